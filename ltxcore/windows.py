"""Long clips as a sequence of model windows, their boundaries placed inside speech pauses. Pure and torch-free:
the plan, ``validate``, the engine and the results all use it. It owns the window vocabulary: a window as planned
(:class:`Window`) and as rendered (:class:`WindowRecord`); their Arrow structs are derived from these fields
(``manifests/windows.py``), so plans and results name them once, here.

LTX-2.3 places video tokens by their time in seconds, and its video RoPE is configured to 20 s
(``positional_embedding_max_pos = [20, 2048, 2048]`` in ltx-core's transformer); users report breakdown from
about 14 s on. So one window lasts at most ``window_seconds`` (default 10 s: half the positional range, below
where breakdown is reported, and attention per window stays small) and a longer clip becomes several windows.

Frame arithmetic. In ``continuous`` mode window k+1 starts ``context_frames`` (``8c + 1``) frames before its
boundary: those frames are window k's last ones, given as conditioning, and are not shown again. Boundaries sit
at output frames ``8j + 1``, so the first window shows ``8j + 1`` frames, every later one but the last a multiple
of 8 (the last shows what is left of the clip, which covers its whole audio), and each renders ``context +
shown`` frames rounded up to the next valid length (``ltxcore/shapes.py``), the extra frames dropped. In
``cuts`` mode windows are independent: a later window renders at least one frame more than it shows.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, get_args

from ltxcore.shapes import FRAME_STEP, frames_within, grid_ceil, grid_floor, render_length

ROPE_MAX_SECONDS = 20.0  # ltx-core's positional_embedding_max_pos[0]: the video positions' range, in seconds
DEFAULT_WINDOW_SECONDS = 10.0
# 17 frames (3 latent frames, 0.7 s at 24 fps) of motion carried into the next window: 7% of a 10 s window,
# inside the 10% overhead target; the public anchors use 9 to 25.
DEFAULT_CONTEXT_FRAMES = 17
LongForm = Literal["continuous", "cuts"]
LONG_FORMS: tuple[str, ...] = get_args(LongForm)


@dataclass(frozen=True)
class Window:
    """One window of a clip, in output frames. It renders ``rendered`` frames from ``start - context``; it shows
    ``frames`` from ``start`` on (the first ``context`` are the previous window's, the extra tail is dropped)."""

    index: int
    start: int
    frames: int
    context: int
    rendered: int
    in_pause: bool  # its start falls inside a speech pause (always true for the first window)

    @property
    def render_start(self) -> int:
        return self.start - self.context

    def seconds(self, fps: float) -> tuple[float, float]:
        """Start and end of the frames it shows, in seconds of the clip."""
        return self.start / fps, (self.start + self.frames) / fps


@dataclass(frozen=True)
class WindowRecord:
    """What a finished window was: the record file beside its segment, and one entry of the results table's
    ``windows`` column."""

    index: int
    start_frame: int
    num_frames: int
    start_s: float
    end_s: float
    seed: int
    seconds: float  # of rendering
    boundary_in_pause: bool
    rendered_by: str = ""  # host/pid of the worker that rendered it (cuts windows spread over workers)


@dataclass(frozen=True)
class WindowSettings:
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    long_form: LongForm = "continuous"

    def window_frames(self, fps: float) -> int:
        """The most frames one window renders (8k+1)."""
        return frames_within(self.window_seconds, fps)

    def problems(self, fps: float) -> list[tuple[str, str]]:
        """(field, message) for settings no window can honour."""
        out = []
        seconds, context = self.window_seconds, self.context_frames
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            return [("window_seconds", f"must be a positive number of seconds, got {seconds!r}.")]
        if seconds > ROPE_MAX_SECONDS:
            out.append(
                (
                    "window_seconds",
                    f"is {seconds:g} s, beyond the model's positional range of {ROPE_MAX_SECONDS:g} s (LTX-2.3's video "
                    f"RoPE); set window_seconds to {ROPE_MAX_SECONDS:g} or less (default {DEFAULT_WINDOW_SECONDS:g}): "
                    "longer audio is rendered as several windows.",
                )
            )
        if not isinstance(context, int) or context < 1 or (context - 1) % FRAME_STEP:
            out.append(("context_frames", f"must be 8k+1 (9, 17, 25, ...), got {context!r}."))
        elif self.long_form == "continuous" and context + FRAME_STEP > self.window_frames(fps):
            out.append(
                (
                    "context_frames",
                    f"is {context}, which leaves no new frames in a window of {self.window_frames(fps)} frames "
                    f"({seconds:g} s at {fps:g} fps); lower context_frames or raise window_seconds.",
                )
            )
        if self.long_form not in LONG_FORMS:
            out.append(("long_form", f"must be one of {', '.join(LONG_FORMS)}, got {self.long_form!r}."))
        return out


def plan_windows(
    num_frames: int, fps: float, settings: WindowSettings, pauses: list[tuple[float, float]] | None = None
) -> list[Window]:
    """The windows of a clip showing ``num_frames``, boundaries chosen over the whole clip (``_ends``) inside
    ``pauses`` ((start, end) seconds of the clip) wherever they allow it. A clip that fits one window is one
    window, rendered as a plain clip. Every window renders at the next valid length (``ltxcore/shapes.py``):
    the extra frames are dropped, and a worker's compiled graphs serve every clip and window."""
    longest = settings.window_frames(fps)
    if num_frames <= longest:
        return [Window(0, 0, num_frames, 0, render_length(num_frames), True)]
    continuous = settings.long_form == "continuous"
    context = settings.context_frames if continuous else 0
    tail = 0 if continuous else 1  # a later ``cuts`` window renders one frame more than it shows
    pause_of = _PauseLookup(pauses or [], fps)
    windows: list[Window] = []
    start = 0
    for index, end in enumerate(_ends(num_frames, longest, longest - context - tail, pause_of)):
        extra = context + tail if index else 0
        in_pause = index == 0 or pause_of(start) is not None
        ctx = context if index else 0
        windows.append(Window(index, start, end - start, ctx, render_length(extra + end - start), in_pause))
        start = end
    return windows


class _PauseLookup:
    """How far boundary frame ``b`` is from the middle of the pause it falls in, in seconds; None: in speech."""

    def __init__(self, pauses: list[tuple[float, float]], fps: float):
        self.pauses, self.fps = sorted(pauses), fps

    def __call__(self, frame: int) -> float | None:
        t = frame / self.fps
        at = bisect.bisect_right(self.pauses, (t, math.inf)) - 1
        if at >= 0 and self.pauses[at][0] <= t <= self.pauses[at][1]:
            return abs(t - (self.pauses[at][0] + self.pauses[at][1]) / 2)
        return None


def _ends(num_frames: int, first_most: int, most: int, pause_of: _PauseLookup) -> list[int]:
    """Where each window ends (output frames 8j+1, then ``num_frames``), chosen over the whole clip rather than
    window by window: the fewest boundaries inside speech, then the fewest windows, then boundaries nearest
    their pause's middle, then the earlier windows longest. The first window shows at most ``first_most``
    frames, a later one ``most``."""
    # best[start] = ((boundaries in speech, windows, seconds off pause middles), the end of the window from start)
    best: dict[int, tuple[tuple[int, int, float], int]] = {}
    for start in [*range(grid_floor(num_frames - 1), 0, -FRAME_STEP), 0]:
        limit = first_most if start == 0 else most
        if num_frames - start <= limit:
            best[start] = ((0, 1, 0.0), num_frames)
            continue
        options = []
        for end in range(grid_ceil(start + FRAME_STEP), min(grid_floor(start + limit), num_frames - 1) + 1, FRAME_STEP):
            (speech, windows, off), _ = best[end]
            off_middle = pause_of(end)
            cost = (speech + (off_middle is None), windows + 1, off + (off_middle or 0.0))
            options.append((cost, end))
        best[start] = min(options, key=lambda option: (option[0], -option[1]))  # ties: the longest window first
    ends, start = [], 0
    while start < num_frames:
        start = best[start][1]
        ends.append(start)
    return ends


def window_file(index: int, suffix: str) -> str:
    """The name of a finished window's file: ``.mp4`` (the frames it shows), ``.npy`` (the frames the next
    window continues from), ``.json`` (its record, written last: a window with a record is whole)."""
    return f"window-{index:04d}{suffix}"


def window_index(name: str) -> int | None:
    """The window a record file (``window-KKKK.json``) is of; None for any other name."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix != "json" or not stem.startswith("window-") or not stem[7:].isdigit():
        return None
    return int(stem[7:])


def window_seed(item_seed: int, index: int) -> int:
    """Window 0 keeps the item's seed (a one-window item renders exactly as a plain clip); later windows get
    their own, fixed by the item's seed and the window's index."""
    if index == 0:
        return item_seed
    return (item_seed * 1_000_003 + index * 7_919) % 2**31
