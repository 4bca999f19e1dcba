"""Long clips as a sequence of model windows, their boundaries placed inside speech pauses. Pure and torch-free:
the plan, ``validate`` and the engine all use it.

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
SHORTEST_SHARE = 0.5  # a boundary is sought in the later half of the longest window, so windows stay long


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
    """The windows of a clip showing ``num_frames``, boundaries inside ``pauses`` ((start, end) seconds of the
    clip) where one lies in the allowed range, else as late as the window allows. A clip that fits one window is
    one window, rendered as a plain clip. Every window renders at the next valid length (``ltxcore/shapes.py``):
    the extra frames are dropped, and a worker's compiled graphs serve every clip and window."""
    longest = settings.window_frames(fps)
    if num_frames <= longest:
        return [Window(0, 0, num_frames, 0, render_length(num_frames), True)]
    continuous = settings.long_form == "continuous"
    windows: list[Window] = []
    start, in_pause = 0, True
    while start < num_frames:
        index = len(windows)
        context = settings.context_frames if continuous and index else 0
        tail = 1 if index and not continuous else 0
        most = longest - context - tail  # frames this window may show
        if num_frames - start <= most:
            end, next_in_pause = num_frames, True
        else:
            end, next_in_pause = _boundary(start, most, fps, pauses or [])
        rendered = render_length(context + end - start + tail)
        windows.append(Window(index, start, end - start, context, rendered, in_pause))
        start, in_pause = end, next_in_pause
    return windows


def _boundary(start: int, most: int, fps: float, pauses: list[tuple[float, float]]) -> tuple[int, bool]:
    """Where the window from ``start`` showing at most ``most`` frames ends: an output frame 8j+1 in the later
    part of its range, inside the pause nearest the range's end (at the pause's middle as near as the 8-frame grid
    allows); without one, the latest frame allowed, inside speech."""
    latest = grid_floor(start + most)
    earliest = max(grid_ceil(start + math.ceil(most * SHORTEST_SHARE)), start + FRAME_STEP)
    best: int | None = None
    for pause_start, pause_end in pauses:
        inside = [b for b in range(earliest, latest + 1, FRAME_STEP) if pause_start <= b / fps <= pause_end]
        if not inside:
            continue
        middle = (pause_start + pause_end) / 2
        candidate = min(inside, key=lambda b: abs(b / fps - middle))
        best = candidate if best is None else max(best, candidate)
    return (best, True) if best is not None else (latest, False)


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


def gpu_seconds(windows: list[Window], seconds_per_frame: float) -> float:
    """Estimated device seconds: rendered frames (context included) at a per-frame rate."""
    return sum(w.rendered for w in windows) * seconds_per_frame
