"""The quality scores on a synthetic talking face with known answers (issue 16, item 4).

A real photograph (scikit-image's astronaut) gets its lower lip pulled down in proportion to a speech-like
loudness envelope, frame by frame, and is muxed with a sound that follows that envelope: in sync, 4 frames
late, 4 frames early, or with an unrelated rhythm. Small frames (256x256) and 3 s clips keep it quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quality.score import EXTRA_MISSING, score_video
from quality.scores import FIELDS, SCORE_NAMES
from tools import talking_clip as tc

pytest.importorskip("dlib", reason="the qa extra (dlib-bin, face-recognition-models) is part of the dev install")
FPS, FRAMES, SIZE = 25.0, 75, 256
NOISE_FRAME = 37
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("talking")
    envelope = tc.speech_envelope(FRAMES / FPS, seed=0)
    frames, still = tc.talking_frames(tc.astronaut(), tc.per_frame(envelope, FPS, FRAMES), SIZE, SIZE)
    sound = tc.voice(envelope, seed=0)
    out = {}

    def write(name: str, pictures: list[np.ndarray], audio: np.ndarray) -> None:
        out[name] = str(folder / f"{name}.mp4")
        tc.write_clip(out[name], pictures, FPS, audio)

    write("aligned", frames, sound)
    write("late4", frames, tc.delayed(sound, 4, FPS))
    write("early4", frames, tc.delayed(sound, -4, FPS))
    write("unrelated", frames, tc.voice(tc.speech_envelope(FRAMES / FPS, seed=12), seed=0))
    noisy = list(frames)
    noisy[NOISE_FRAME] = np.random.default_rng(1).integers(0, 256, still.shape, dtype=np.uint8)
    write("noise_frame", noisy, sound)
    noise = np.random.default_rng(2).integers(0, 256, (FRAMES, 64, 64, 3), dtype=np.uint8)
    write("no_face", list(noise), sound)
    for name, image in {"astronaut": tc.astronaut(), "other_person": _other_person()}.items():
        out[name] = str(folder / f"{name}.png")
        Image.fromarray(image).save(out[name])
    return out


def _other_person() -> np.ndarray:
    """A different person: the first face of the Labeled Faces in the Wild sample scikit-image ships (25x25,
    scaled up so the detector finds it)."""
    from skimage import data

    face = (data.lfw_subset()[0] * 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(face).resize((200, 200), Image.BICUBIC))] * 3, axis=-1)


@pytest.fixture(scope="module")
def scores(clips) -> dict[str, dict]:
    plain = ("aligned", "late4", "early4", "unrelated", "noise_frame", "no_face")
    out = {name: score_video(clips[name]) for name in plain}
    for image in ("astronaut", "other_person"):
        out[f"aligned_vs_{image}"] = score_video(clips["aligned"], clips[image])
    return out


def test_every_record_has_every_field(scores):
    for record in scores.values():
        assert tuple(record) == FIELDS


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


def test_without_the_qa_extra_the_scores_are_null_and_say_so(clips):
    """In a fresh interpreter where ``import dlib`` fails, as it does when the extra is not installed."""
    code = (
        "import json, sys; sys.modules['dlib'] = None\n"  # a None entry makes the import raise ImportError
        "from quality.score import score_video\n"
        f"print(json.dumps(score_video({clips['aligned']!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    record = json.loads(done.stdout)
    assert record["reason"] == EXTRA_MISSING and all(record[name] is None for name in SCORE_NAMES)
