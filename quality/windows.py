"""Scores of a long item rendered as windows: each window's lip sync, identity and colour, a seam score per
boundary, and the drift from the first window to the last.

A seam is the frame step across a boundary over the typical step inside the two windows it joins
(``measures.seam_scores``): 1.0 means no visible jump. Drift compares the last window with the first:
identity as 1 - the similarity of their faces, colour as the distance of their mean colours (% of range).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quality import measures

COLOUR_SAMPLES = 8  # frames per window whose mean colour is measured


def window_ranges(frames: int, boundaries: list[int]) -> list[range]:
    edges = [0, *boundaries, frames]
    return [range(a, b) for a, b in zip(edges, edges[1:], strict=False)]


def window_scores(
    clip,
    small: np.ndarray,
    boundaries: list[int],
    lipsync: Callable[[range], tuple[int | None, float | None]],
    identity: Callable[[range], float | None],
    features: Callable[[range], np.ndarray | None],
    similarity: Callable[[np.ndarray, np.ndarray], float],
    reference_colour: np.ndarray | None,
) -> dict:
    """The per-window fields of the record (``windows``, ``seams`` and the worst of them); all None for a clip
    of one window. ``small`` is the clip's gray frames scaled down (0..1)."""
    if not boundaries:
        return {"windows": None, "seams": None, **dict.fromkeys(FLAT)}
    ranges = window_ranges(small.shape[0], boundaries)
    colours = [_mean_colour(clip, frames) for frames in ranges]
    base = colours[0] if reference_colour is None else reference_colour
    windows = []
    for frames, colour in zip(ranges, colours, strict=True):
        offset, confidence = lipsync(frames)
        windows.append(
            {
                "start": frames.start,
                "frames": len(frames),
                "lipsync_offset_frames": offset,
                "lipsync_confidence": confidence,
                "identity_similarity": identity(frames),
                "colour_shift": measures.colour_distance(colour, base),
            }
        )
    seams = measures.seam_scores(measures.frame_change(small), boundaries)
    first, last = features(ranges[0]), features(ranges[-1])
    confidences = [w["lipsync_confidence"] for w in windows if w["lipsync_confidence"] is not None]
    return {
        "windows": windows,
        "seams": seams,
        "worst_seam": max(seams),
        "worst_seam_frame": boundaries[int(np.argmax(seams))],
        "worst_window_lipsync_confidence": min(confidences) if confidences else None,
        "identity_drift": None if first is None or last is None else round(1 - similarity(first, last), 4),
        "colour_drift": measures.colour_distance(colours[-1], colours[0]),
    }


FLAT = ("worst_seam", "worst_seam_frame", "worst_window_lipsync_confidence", "identity_drift", "colour_drift")


def _mean_colour(clip, frames: range) -> np.ndarray:
    picks = np.unique(np.linspace(frames.start, frames.stop - 1, min(COLOUR_SAMPLES, len(frames))).round().astype(int))
    return np.mean([clip.rgb(int(t)).mean(axis=(0, 1)) for t in picks], axis=0)
