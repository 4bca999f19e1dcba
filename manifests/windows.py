"""An item's windows as the plan and ``validate`` show them: boundaries in the speech pauses of its audio
(``ltxcore/pauses.py``), each window's frames and seconds, and the item's estimated GPU time; and the Arrow
structs of the window vocabulary (``ltxcore/windows.py``), derived from its dataclasses.

The estimate is linear in stage-2 video tokens, from the reference clip of BENCHMARKS.md (768x512, 97 frames,
4,992 tokens on one H200, steady state): 7.9 s for a final, 2.9 s for a draft. Context frames count: they are
rendered again in the next window.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, get_type_hints

import pyarrow as pa

from ltxcore.pauses import Pauses
from ltxcore.token_bound import video_tokens
from ltxcore.windows import Window, WindowRecord, WindowSettings, plan_windows
from manifests.item import Item

REFERENCE_TOKENS = 4992
REFERENCE_SECONDS = {"two-stage": 7.9, "distilled": 2.9}
_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def arrow_struct(cls: type) -> pa.StructType:
    """The Arrow struct of a dataclass of plain fields, in field order: ltxcore stays free of pyarrow, and the
    fields are written once, in the dataclass."""
    hints = get_type_hints(cls)
    return pa.struct([pa.field(f.name, _ARROW[hints[f.name]]) for f in fields(cls)])


WINDOW_STRUCT = arrow_struct(Window)  # a window as planned: the plan's ``windows`` column
RENDERED_WINDOW = arrow_struct(WindowRecord)  # a window as rendered: the results table's ``windows`` column


@dataclass(frozen=True)
class ItemWindows:
    windows: tuple[Window, ...]
    detector: str | None  # "vad", "energy", or None when the clip is one window (no pauses sought)


def settings_of(item: Item) -> WindowSettings:
    return WindowSettings(item.window_seconds, item.context_frames, item.long_form)


class PauseFinder(Protocol):
    """``ltxcore.pauses.find_pauses`` of a file, as ``manifests.media_facts.MediaFacts`` finds them once."""

    def pauses(self, uri: str, start: float, seconds: float) -> Pauses: ...


def pause_span(item: Item, num_frames: int) -> tuple[float, float] | None:
    """The (start, seconds) of its audio that ``item_windows`` searches for pauses: the clip's, when it needs more
    than one window; None when it fits one. ``MediaFacts.gather`` finds them ahead, without planning windows."""
    if num_frames <= settings_of(item).window_frames(item.frame_rate):
        return None
    return item.audio_start_time, num_frames / item.frame_rate


def item_windows(item: Item, num_frames: int, finder: PauseFinder) -> ItemWindows:
    """The windows of ``item`` at ``num_frames``, boundaries in the pauses of ``pause_span``."""
    settings = settings_of(item)
    span = pause_span(item, num_frames)
    if span is None:
        return ItemWindows(tuple(plan_windows(num_frames, item.frame_rate, settings)), None)
    assert isinstance(item.audio, str), "a validated item has audio"
    pauses = finder.pauses(item.audio, *span)
    return ItemWindows(tuple(plan_windows(num_frames, item.frame_rate, settings, pauses.spans)), pauses.detector)


def estimated_gpu_seconds(item: Item, windows: tuple[Window, ...]) -> float:
    rate = REFERENCE_SECONDS.get(item.pipeline, REFERENCE_SECONDS["two-stage"]) / REFERENCE_TOKENS
    return sum(video_tokens(w.rendered, item.height, item.width) for w in windows) * rate


def plan_total(planned: list[tuple[Item, tuple[Window, ...]]]) -> str:
    """One line for a plan: its items, seconds of video, windows and estimated GPU-hours."""
    seconds = sum(sum(w.frames for w in windows) / item.frame_rate for item, windows in planned)
    gpu = sum(estimated_gpu_seconds(item, windows) for item, windows in planned)
    video = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.1f} s"
    windows = sum(len(w) for _, w in planned)
    return f"{len(planned)} items, {video} of video in {windows} window(s), ~{gpu / 3600:.2f} GPU-hours on one H200"


def describe(item: Item, found: ItemWindows) -> list[str]:
    """Lines for ``validate`` and the plan: the windows of a many-window item, where each starts and ends."""
    fps = item.frame_rate
    gpu = estimated_gpu_seconds(item, found.windows)
    total = sum(w.frames for w in found.windows)
    lengths = ", ".join(str(n) for n in sorted({w.rendered for w in found.windows}))
    head = f"{item.id}: {total} frames ({total / fps:.1f} s), {len(found.windows)} window(s)"
    head += f" rendered at {lengths} frames, ~{gpu:.0f} GPU s"
    if len(found.windows) == 1:
        return [head]
    lines = [f"{head}, {item.long_form}, pauses by {found.detector}:"]
    for w in found.windows:
        start, end = w.seconds(fps)
        where = "" if w.index == 0 else (" (starts in a pause)" if w.in_pause else " (starts INSIDE SPEECH: no pause)")
        extra = (f", +{w.context} context" if w.context else "") + f", renders {w.rendered}"
        lines.append(
            f"    window {w.index + 1}: {start:7.2f}-{end:7.2f} s, frames {w.start}-{w.start + w.frames - 1}"
            f" ({w.frames}{extra}){where}"
        )
    return lines


def to_rows(windows: tuple[Window, ...]) -> list[dict]:
    return [vars(w) for w in windows]


def from_rows(rows: list[dict] | None) -> tuple[Window, ...]:
    return tuple(Window(**row) for row in rows or ())
