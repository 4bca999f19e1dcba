"""Stage-2 activation memory per video token: ``python -m tools.bench tokens --bundle DIR --out tokens.json``.

``ltxcore/token_bound.py`` refuses clips above 188,000 stage-2 video tokens, reasoned from one clip's peak
(0.16 MiB per token over the resident weights at 4,992 tokens, allowed 0.5 MiB). This measures the slope
directly: one stage-2 forward (batch 1, distilled LoRA active, as stage 2 runs) at several clip sizes on the
eager FP8 engine (the uncompiled path, which the allowance covers too), with the peak GPU memory above what
was allocated before the forward. Inputs are random (``guidance.synthetic_inputs``): memory and time do not
depend on the values.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from ltx_core.types import VideoPixelShape

from ltxcore.bundle import ModelBundle
from ltxcore.engine import DISTILLED, Engine
from ltxcore.guidance import synthetic_inputs
from ltxcore.token_bound import ACTIVATION_MIB_PER_TOKEN, video_tokens
from tools.reference_clip import REFERENCE, ensure_bundle
from tools.timing import GIB

# (frames, height, width), the reference clip first: 4,992 to 67,320 tokens
SIZES = ((REFERENCE.num_frames, REFERENCE.height, REFERENCE.width), (161, 704, 1280), (257, 1088, 1920))
FPS = REFERENCE.frame_rate


@torch.inference_mode()
def run(bundle: str) -> dict:
    folder, _ = ensure_bundle(Path(bundle))
    engine = Engine(ModelBundle.from_folder(folder, quantization="fp8-scaled"), "cuda")
    report: dict = {"resident_gib": torch.cuda.memory_allocated() / GIB, "sizes": []}
    for frames, height, width in SIZES:
        video, audio = synthetic_inputs(engine.transformer, VideoPixelShape(1, frames, height, width, FPS), 1)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with engine.adapters.active({DISTILLED: 1.0}):
            engine.transformer(video=video, audio=audio, perturbations=None)
        torch.cuda.synchronize()
        tokens = video_tokens(frames, height, width)
        added = torch.cuda.max_memory_allocated() - before
        report["sizes"].append(
            {
                "frames": frames,
                "height": height,
                "width": width,
                "video_tokens": tokens,
                "forward_s": time.perf_counter() - start,
                "added_gib": added / GIB,
                "mib_per_token": added / 2**20 / tokens,
            }
        )
        del video, audio
    first, last = report["sizes"][0], report["sizes"][-1]
    slope = (last["added_gib"] - first["added_gib"]) * 1024 / (last["video_tokens"] - first["video_tokens"])
    report["slope_mib_per_token"] = slope
    report["allowed_mib_per_token"] = ACTIVATION_MIB_PER_TOKEN
    report["device"] = torch.cuda.get_device_name()
    return report
