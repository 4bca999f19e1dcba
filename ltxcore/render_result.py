"""What one render produced (``RenderResult``) and the clock that times its phases (``PhaseClock``): shared by
the engine, the long-form loop, the worker and the benchmarks, none of which needs the engine to read them."""

from __future__ import annotations

import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class RenderResult:
    """What one render produced, with wall-clock seconds and peak device memory per phase."""

    output: str | None
    num_frames: int
    height: int
    width: int
    frame_rate: float
    seed: int
    audio_padded_seconds: float  # seconds of the shown video past the end of its audio (a player plays silence)
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory: dict[str, int] = field(default_factory=dict)
    video_latent: torch.Tensor | None = None
    prompt_enhanced: str | None = None  # the prompt Gemma wrote, when the request asked for enhancement
    muxing: Future | None = None  # set when the mp4 is still being written in the background
    windows: list = field(default_factory=list)  # a long clip's finished windows (ltxcore.windows.WindowRecord)

    def wait(self) -> RenderResult:
        """Block until the mp4 is written (re-raising its error), and add the mux time to ``timings``."""
        if self.muxing is not None:
            self.timings["mux"] = self.muxing.result()
            self.muxing = None
        return self


class PhaseClock:
    """Times named phases; on CUDA it synchronises at the edges and records each phase's peak memory.
    A phase that runs twice adds up its times and keeps the larger peak."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, int] = {}

    @contextmanager
    def phase(self, name: str):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
            self.peaks[name] = max(self.peaks.get(name, 0), torch.cuda.max_memory_allocated())
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
