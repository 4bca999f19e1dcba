"""The reference clip every GPU benchmark renders or sizes itself by, defined once: 768x512, 97 frames at
25 fps, the lesson example's speech, its presenter image at frame 0, 30 stage-1 steps with upstream's
guidance (cfg 3 / stg 1 / modality 3), then 3 distilled stage-2 steps; each clip has a prompt of its own, so
prompt caching helps no side. The bundle is a random one with the released 22B configs, written on the GPU
when missing (``python -m fixtures.random_bundle DIR --size reference`` writes the same).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ltxcore.bundle import RELEASED_NAMES
from ltxcore.request import GuiderSettings, RenderRequest

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "lesson"
SPEECH, IMAGE = EXAMPLES / "en.ogg", EXAMPLES / "presenter.png"
AUDIO = Path("/tmp/ltx-bench-speech-stereo.wav")  # upstream's audio encoder takes stereo files only


@dataclass(frozen=True)
class ClipSettings:
    """A clip's size, length and stage-1 steps, as a request and a manifest name them."""

    height: int
    width: int
    num_frames: int
    frame_rate: float
    num_inference_steps: int


REFERENCE = ClipSettings(height=512, width=768, num_frames=97, frame_rate=25.0, num_inference_steps=30)
GUIDER = GuiderSettings()  # upstream's: cfg 3, stg 1, modality 3
PROMPT = "A presenter speaks to the camera in a bright studio, natural light, calm gestures. Take {}."


def write_stereo_speech() -> None:
    """The lesson example's (mono) speech as a stereo WAV, which both sides read."""
    import av

    from ltxcore.media import decode_audio

    clip = decode_audio(str(SPEECH), 0.0, None)
    with av.open(str(AUDIO), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=clip.sample_rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(clip.samples.astype("float32"), format="fltp", layout="stereo")
        frame.sample_rate = clip.sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def reference_request(index: int) -> RenderRequest:
    """Take ``index`` of the reference clip: its own prompt and seed."""
    return RenderRequest(
        audio=str(AUDIO), prompt=PROMPT.format(index), seed=index, image=str(IMAGE), guider=GUIDER, **asdict(REFERENCE)
    )


def reference_defaults() -> dict:
    """The reference clip as a manifest's ``defaults`` (items add their prompts)."""
    guider = {name: getattr(GUIDER, name) for name in ("cfg_scale", "stg_scale", "modality_scale")}
    return {**asdict(REFERENCE), "image": str(IMAGE), "audio": str(AUDIO), "video_guider": guider}


def ensure_bundle(folder: Path) -> tuple[Path, float | None]:
    """The reference-size bundle in ``folder`` and the seconds it took to write (None: it was there)."""
    if (folder / RELEASED_NAMES["checkpoint_path"]).exists():
        return folder, None
    import torch

    from fixtures.random_bundle import make_bundle

    start = time.perf_counter()
    make_bundle(folder, "reference", seed=0, device="cuda")
    torch.cuda.empty_cache()
    return folder, time.perf_counter() - start
