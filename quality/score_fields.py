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
    Score("identity_similarity", float, "low", "1 - face-embedding distance to the reference, 0..1; dlib: >0.4 same"),
    Score("face_found_fraction", float, "low", "share of checked frames in which a face was found, 0..1"),
)
SCORE_NAMES = tuple(s.name for s in SCORES)
BY_NAME = {s.name: s for s in SCORES}
# The quality record: every score (None when it could not be measured), why any is None, and the CPU seconds
# the scoring took.
FIELDS = (*SCORE_NAMES, "reason", "seconds")


def unscored(reason: str, seconds: float = 0.0, **measured) -> dict:
    """A record whose scores are None except those in ``measured``, with the reason the rest are missing."""
    return {**dict.fromkeys(SCORE_NAMES), **measured, "reason": reason, "seconds": seconds}
