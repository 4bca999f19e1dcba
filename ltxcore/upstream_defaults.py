"""Upstream LTX-2.3's defaults as plain values, so that the item model, plans and results load without torch.

ltx-pipelines keeps them in ``ltx_pipelines.utils.constants`` (``LTX_2_3_PARAMS`` and the ``DEFAULT_*``
names), whose import pulls in torch; validating a manifest or reading a results table should not. Each value
here is checked against upstream's by ``tests/test_torch_free.py``, so an ltx-core release that changes one
fails the suite instead of drifting.
"""

from __future__ import annotations

SEED = 10
STAGE_2_HEIGHT, STAGE_2_WIDTH = 1024, 1536  # twice stage 1's 512 x 768: the final size
FRAME_RATE = 24.0
NUM_INFERENCE_STEPS = 30
# the video guider's parameters (``video_guider_params``)
CFG_SCALE, STG_SCALE, RESCALE_SCALE, MODALITY_SCALE, SKIP_STEP = 3.0, 1.0, 0.7, 3.0, 0
STG_BLOCKS = (28,)
LORA_STRENGTH = 1.0
IMAGE_CRF = 33
DISTILLED_STEPS = 8  # steps of ``DISTILLED_SIGMA_VALUES`` (nine sigmas), the schedule drafts denoise with
NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, "
    "grainy texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, "
    "deformed facial features, asymmetrical face, missing facial features, extra limbs, disfigured hands, "
    "wrong hand count, artifacts around text, inconsistent perspective, camera shake, incorrect depth of "
    "field, background too sharp, background clutter, distracting reflections, harsh shadows, inconsistent "
    "lighting direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny "
    "valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, "
    "mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, background noise, "
    "off-sync audio, incorrect dialogue, added dialogue, repetitive speech, jittery movement, awkward "
    "pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, flat lighting, "
    "inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)
