"""The quality scores on a synthetic talking face with known answers (issue 16, item 4).

A real photograph (scikit-image's astronaut) gets its lower lip pulled down in proportion to a speech-like
loudness envelope, frame by frame, and is muxed with a sound that follows that envelope: in sync, 4 frames
late, 4 frames early, or with an unrelated rhythm (the ``talking`` fixture in conftest). Small frames
(256x256) and 3 s clips keep it quick.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from conftest import REPO

from quality.score_clip import EXTRA_MISSING, score_video
from quality.score_fields import FIELDS, SCORE_NAMES
from runstore.results import QUALITY_TYPE


@pytest.fixture(scope="module")
def scores(talking) -> dict[str, dict]:
    plain = ("aligned", "late4", "early4", "unrelated", "noise_frame", "no_face")
    out = {name: score_video(talking[name]) for name in plain}
    for image in ("astronaut", "other_person"):
        out[f"aligned_vs_{image}"] = score_video(talking["aligned"], talking[image])
    return out


def test_every_record_fits_the_results_tables_quality_column(scores):
    """What the scorer returns is what a results row stores: every field, of the column's type, none lost."""
    for record in scores.values():
        stored = pa.array([record], QUALITY_TYPE).to_pylist()[0]
        assert tuple(record) == FIELDS and stored.keys() >= set(SCORE_NAMES)
        assert all(stored[name] == record[name] for name in SCORE_NAMES if not isinstance(record[name], float))
        assert all(
            stored[name] == pytest.approx(record[name]) for name in SCORE_NAMES if isinstance(record[name], float)
        )


def test_offset_is_zero_in_sync_and_the_shift_when_shifted(scores):
    assert abs(scores["aligned"]["lipsync_offset_frames"]) <= 1
    assert abs(scores["late4"]["lipsync_offset_frames"] - 4) <= 1
    assert abs(scores["early4"]["lipsync_offset_frames"] + 4) <= 1
    assert scores["aligned"]["face_found_fraction"] == 1.0 and scores["aligned"]["reason"] is None


def test_confidence_in_sync_is_clearly_above_unrelated_audio(scores):
    aligned = scores["aligned"]["lipsync_confidence"]
    unrelated = scores["unrelated"]["lipsync_confidence"]
    assert aligned > 0.8 and aligned > unrelated + 0.3, (aligned, unrelated)
    for shifted in ("late4", "early4"):  # a shift moves the peak; it does not lower it
        assert scores[shifted]["lipsync_confidence"] > unrelated + 0.3


def test_a_noise_frame_raises_flicker_and_jitter(scores):
    clean, noisy = scores["aligned"], scores["noise_frame"]
    assert noisy["flicker"] > 10 * clean["flicker"], (clean["flicker"], noisy["flicker"])
    assert noisy["landmark_jitter"] > clean["landmark_jitter"]


def test_identity_is_high_for_the_same_photo_and_low_for_another_person(scores):
    same = scores["aligned_vs_astronaut"]["identity_similarity"]
    other = scores["aligned_vs_other_person"]["identity_similarity"]
    assert same > 0.8 and other < 0.4 and same - other > 0.4, (same, other)
    assert scores["aligned"]["identity_similarity"] > 0.8  # no reference: against the clip's own first face


def test_no_face_gives_null_scores_and_says_why(scores):
    record = scores["no_face"]
    assert all(record[name] is None for name in SCORE_NAMES if name != "face_found_fraction")
    assert record["face_found_fraction"] == 0.0 and "no face found" in record["reason"]


def test_without_the_qa_extra_the_scores_are_null_and_say_so(talking):
    """In a fresh interpreter where ``import ai_edge_litert`` fails, as it does when the extra is not installed."""
    code = (
        "import json, sys; sys.modules['ai_edge_litert'] = None\n"  # a None entry makes the import raise ImportError
        "from quality.score_clip import score_video\n"
        f"print(json.dumps(score_video({talking['aligned']!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    record = json.loads(done.stdout)
    assert record["reason"] == EXTRA_MISSING and all(record[name] is None for name in SCORE_NAMES)


def test_a_worker_and_ltx_batch_score_without_the_extra(talking, monkeypatch, capsys):
    """Where the extra is missing, a worker's scorer starts no child and records why; ``ltx-batch score``
    refuses rather than overwrite scores with empty ones."""
    import quality.process
    from ray_jobs.cli import main

    monkeypatch.setattr(quality.process, "available", lambda: False)
    record = quality.process.ScoringProcess().score(talking["aligned"])
    assert record["reason"] == EXTRA_MISSING and record["lipsync_confidence"] is None
    assert main(["score", talking["aligned"]]) == 2
    assert "pip install 'ltx-batch[qa]'" in capsys.readouterr().err


def test_the_opt_in_dlib_models_score_the_same_clips(talking):
    """``LTX_BATCH_FACE_MODELS=dlib68`` (the ``qa-dlib`` extra, non-commercial): same answers, dlib's layout."""
    pytest.importorskip("dlib", reason="the qa-dlib extra is part of the dev install")
    aligned = score_video(talking["aligned"], face_models="dlib68")
    late = score_video(talking["late4"], face_models="dlib68")
    unrelated = score_video(talking["unrelated"], face_models="dlib68")
    assert aligned["lipsync_offset_frames"] == 0 and abs(late["lipsync_offset_frames"] - 4) <= 1
    assert aligned["lipsync_confidence"] > unrelated["lipsync_confidence"] + 0.3
    other = score_video(talking["aligned"], talking["other_person"], face_models="dlib68")["identity_similarity"]
    assert other < 0.4 < aligned["identity_similarity"]


def test_the_worker_scorer_keeps_the_reference_image_it_was_given(talking, tmp_path):
    """A worker's next shard may prune the fetched image while a clip's scores still wait for its mp4: the scorer
    keeps its own link to the image from the moment it is asked, so identity is still compared."""
    import shutil
    from concurrent.futures import Future

    from ray_jobs.worker_scoring import ClipScorer

    image, video = tmp_path / "fetched.png", tmp_path / "clip.mp4"
    shutil.copyfile(talking["astronaut"], image)
    shutil.copyfile(talking["aligned"], video)
    muxed: Future = Future()
    scorer = ClipScorer()
    try:
        pending = scorer.start(video, str(image), muxed)
        image.unlink()  # pruned before the mp4 is even written
        muxed.set_result(0.1)
        scorer.settle()
        record = pending.record()
    finally:
        scorer.close()
    assert record is not None and record["identity_similarity"] is not None and record["identity_similarity"] > 0.5
