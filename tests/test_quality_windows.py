"""Per-window scores of a long item (issue 23), on the synthetic long clips of conftest's ``long_clips``:
three windows (frames 0-39, 40-79, 80-119) with a clean join, a jump at the second boundary, a colour that
drifts window after window, or lip sync lost in the middle window.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LONG_BOUNDARIES as BOUNDARIES

from quality.score_clip import score_video
from quality.score_fields import FIELDS


@pytest.fixture(scope="module")
def scored(long_clips) -> dict[str, dict]:
    return {name: score_video(path, boundaries=BOUNDARIES) for name, path in long_clips.items()}


def test_windows_and_seams_are_in_the_record(scored, long_clips):
    record = scored["clean"]
    assert tuple(record) == FIELDS and record["reason"] is None
    assert [(w["start"], w["frames"]) for w in record["windows"]] == [(0, 40), (40, 40), (80, 40)]
    assert len(record["seams"]) == 2
    single = score_video(long_clips["clean"])  # no boundaries: one window, no window fields
    assert single["windows"] is None and single["worst_seam"] is None and single["lipsync_confidence"] is not None


def test_a_jump_is_found_at_its_boundary_and_a_clean_join_scores_about_one(scored):
    clean, jump = scored["clean"]["seams"], scored["jump"]["seams"]
    assert max(clean) < 2.0, clean
    assert jump[1] > 5 * max(clean) and jump[1] > 4.0, (clean, jump)
    assert jump[0] < 2.0 and scored["jump"]["worst_seam_frame"] == BOUNDARIES[1]


def test_colour_drift_rises_window_after_window(scored):
    shifts = [w["colour_shift"] for w in scored["drift"]["windows"]]
    assert shifts[0] < shifts[1] < shifts[2], shifts
    clean, drift = scored["clean"]["colour_drift"], scored["drift"]["colour_drift"]
    assert drift > 4.0 and drift > 10 * clean, (clean, drift)
    assert max(scored["drift"]["seams"]) < 2.0  # a slow drift is no jump
    assert scored["clean"]["identity_drift"] < 0.2


def test_lip_sync_lost_in_one_window_shows_in_that_window(scored):
    confidences = [w["lipsync_confidence"] for w in scored["lost_sync"]["windows"]]
    good = [w["lipsync_confidence"] for w in scored["clean"]["windows"]]
    assert min(good) > 0.6, good
    assert int(np.argmin(confidences)) == 1 and confidences[1] < min(good) - 0.2, (good, confidences)
    assert scored["lost_sync"]["worst_window_lipsync_confidence"] == confidences[1]
