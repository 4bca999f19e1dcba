"""How many frames a clip shows, and the few lengths clips and windows render at. Pure and torch-free: the
engine, the plan, ``validate`` and the workers' warm-up all take their frame counts from here.

Shown frames cover the whole audio window: ``ceil(seconds * fps)``. Every instant of the audio has a frame under
it and the video ends less than one frame after the audio, which the mp4 carries whole (flooring to a valid
length used to cut up to 8 frames, often the last syllable). Any count can be shown.

Rendered frames come from one ladder ("rungs"). A compiled graph is specialised to one length
(``ltxcore/compile.py``), about 150 s of compiling per length on an H200, so every clip and window renders at
the smallest rung that holds its frames, context included; the frames past those it shows are rendered over
silence and dropped. The rungs: ``1 + SHAPE_STEP * j`` (25, 49, 73, 97, ...) and the longest window itself, never
above it (a longer clip renders as windows); below the first step, every valid length (1, 9, 17), since a clip
under a second would otherwise render several times the frames it shows. A clip whose length already is a rung
(the reference clip: 97 frames at 25 fps) renders exactly as it did before the ladder.
"""

from __future__ import annotations

import math

FRAME_STEP = 8  # the video VAE compresses time by 8: a rendered length is 8k + 1
# 3 latent frames, 1 s at 24 fps: a clip renders at most 23 frames it does not show, and a worker compiles one
# length per second of clip lengths up to the longest window (10 at 24 fps with 10 s windows), not one per length.
SHAPE_STEP = 24
WHOLE = 1e-6  # a frame count this close to a whole number is that number (seconds times fps in floating point)


def frames_for_duration(seconds: float, fps: float) -> int:
    """The frames a clip shows over ``seconds`` of audio: the fewest that cover it (at least one)."""
    return max(1, math.ceil(seconds * fps - WHOLE))


def frames_within(seconds: float, fps: float) -> int:
    """The longest valid length (8k+1) that lasts at most ``seconds``: the longest window."""
    return max(1, grid_floor(math.floor(seconds * fps + WHOLE)))


def rungs(longest: int) -> tuple[int, ...]:
    """The lengths clips and windows render at, shortest first, when no window renders more than ``longest``."""
    below = range(1, SHAPE_STEP, FRAME_STEP)
    steps = range(1 + SHAPE_STEP, longest, SHAPE_STEP)
    return (*(r for r in below if r < longest), *steps, longest)


def render_length(frames: int, longest: int) -> int:
    """The rung a clip or window of ``frames`` renders at. Past ``longest`` (a clip a run renders as windows,
    rendered whole by a direct engine call): the next valid length."""
    if frames > longest:
        return grid_ceil(frames)
    return next(r for r in rungs(longest) if r >= frames)


def grid_floor(frame: int) -> int:
    """The largest 8j+1 at or below ``frame``."""
    return (frame - 1) // FRAME_STEP * FRAME_STEP + 1


def grid_ceil(frame: int) -> int:
    """The smallest 8j+1 at or above ``frame``."""
    return -(-(frame - 1) // FRAME_STEP) * FRAME_STEP + 1
