"""How many frames a clip shows, and the length it renders at. Pure and torch-free: the engine, the plan,
``validate`` and the workers' warm-up all take their frame counts from here.

Shown frames cover the whole audio window: ``ceil(seconds * fps)``. Every instant of the audio has a frame under
it and the video ends less than one frame after the audio, which the mp4 carries whole (flooring to a valid
length used to cut up to 8 frames, often the last syllable). Any count can be shown.

A clip or window renders at the next valid length (``8k + 1``, the VAE's step) that holds its frames, context
included; the frames past those it shows (at most 7) are rendered over silence and dropped. Compiled graphs do
not care about the length (their token axes are symbolic, ``ltxcore.blocks``), so no length is rounded further:
measured on an H200, a token-generic graph costs the same per clip as one specialised to the length, and a new
length costs its first call a CUDA-graph capture (~1.3 s), not a compile (~28 s) (BENCHMARKS.md). A clip whose
length already is valid (the reference clip: 97 frames) renders exactly as it did before.
"""

from __future__ import annotations

import math

FRAME_STEP = 8  # the video VAE compresses time by 8: a rendered length is 8k + 1
WHOLE = 1e-6  # a frame count this close to a whole number is that number (seconds times fps in floating point)


def frames_for_duration(seconds: float, fps: float) -> int:
    """The frames a clip shows over ``seconds`` of audio: the fewest that cover it (at least one)."""
    return max(1, math.ceil(seconds * fps - WHOLE))


def frames_within(seconds: float, fps: float) -> int:
    """The longest valid length (8k+1) that lasts at most ``seconds``: the longest window."""
    return max(1, grid_floor(math.floor(seconds * fps + WHOLE)))


def render_length(frames: int) -> int:
    """The length a clip or window of ``frames`` (context included) renders at: the next valid one."""
    return grid_ceil(frames)


def grid_floor(frame: int) -> int:
    """The largest 8j+1 at or below ``frame``."""
    return (frame - 1) // FRAME_STEP * FRAME_STEP + 1


def grid_ceil(frame: int) -> int:
    """The smallest 8j+1 at or above ``frame``."""
    return -(-(frame - 1) // FRAME_STEP) * FRAME_STEP + 1
