"""What a clip's quality record holds: the score names, their meaning, and which end of each is weak.

Kept free of heavy imports: the results table, ``ltx-batch status``, the report and ``--where`` read these
names without loading the face model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    name: str
    kind: type  # int or float
    weak: str  # "low", "high" or "far from 0": where the bad values are
    meaning: str

    def weakness(self, value: float) -> float:
        """A number that grows as the clip gets worse, so every score sorts weakest first the same way."""
        if self.weak == "far from 0":
            return abs(value)
        return -value if self.weak == "low" else value


SCORES = (
    Score(
        "lipsync_offset_frames", int, "far from 0", "frames the sound lags the mouth (negative: it leads); 0 is in sync"
    ),
    Score("lipsync_confidence", float, "low", "correlation peak over its median across lags, 0..2; higher is surer"),
    Score("flicker", float, "high", "mean frame-to-frame brightness jolt outside the mouth, % of full range"),
    Score("landmark_jitter", float, "high", "mean face-landmark jolt per frame outside the mouth, % of eye distance"),
    Score("identity_similarity", float, "low", "face similarity to the reference (lowest sampled frame), 0..1"),
    Score("face_found_fraction", float, "low", "share of checked frames in which a face was found, 0..1"),
    # Long items rendered as windows (None for a clip of one window):
    Score(
        "worst_seam", float, "high", "largest frame step across a window boundary over the steps inside; 1 = no jump"
    ),
    Score("worst_window_lipsync_confidence", float, "low", "lowest lip-sync confidence of any window"),
    Score("identity_drift", float, "high", "1 - face similarity of the last window to the first, 0..1"),
    Score("colour_drift", float, "high", "mean-colour distance of the last window to the first, % of full range"),
)
SCORE_NAMES = tuple(s.name for s in SCORES)
BY_NAME = {s.name: s for s in SCORES}
# Per-window detail of a long item: the boundary of the worst seam, each window's scores (``WINDOW_FIELDS``) and
# the seam score per boundary.
DETAIL = ("worst_seam_frame", "windows", "seams")
WINDOW_FIELDS = (
    ("start", int),
    ("frames", int),
    ("lipsync_offset_frames", int),
    ("lipsync_confidence", float),
    ("identity_similarity", float),
    ("colour_shift", float),  # mean-colour distance to the reference image (to window 1 without one), %
)
# The quality record: every score (None when it could not be measured), the window detail, why any score is
# None, and the CPU seconds the scoring took.
FIELDS = (*SCORE_NAMES, *DETAIL, "reason", "seconds")


def unscored(reason: str, seconds: float = 0.0, **measured) -> dict:
    """A record whose scores are None except those in ``measured``, with the reason the rest are missing."""
    return {**dict.fromkeys((*SCORE_NAMES, *DETAIL)), **measured, "reason": reason, "seconds": seconds}
