"""Score one clip: ``score_video(mp4, reference_image) -> dict`` with the fields of ``quality.score_fields.FIELDS``.

Proxies, not SyncNet: lip sync correlates the inner-lip gap with the sound's loudness over a window of lags;
flicker and jitter are temporal second differences outside the mouth; identity is dlib's face-embedding
distance to the reference image's face. A score that cannot be measured is None and ``reason`` says why;
nothing here raises for a bad clip, and nothing is downloaded.
"""

from __future__ import annotations

import time
from typing import cast

import numpy as np
from PIL import Image

from quality import measures
from quality.face import Box, FaceModel, QualityUnavailable
from quality.score_fields import unscored
from quality.video import read_clip

DETECT_EVERY = 2  # frames between face searches while a face is in sight; the box is interpolated in between
SEEK_EVERY = 6  # frames between face searches while none is (a whole-frame search costs more)
MAX_LAG_SECONDS = 0.6  # lip-sync offsets searched: +-15 frames at 25 fps
MIN_FACE_FRACTION = 0.5  # below this, the mouth track is too holey to correlate
IDENTITY_SAMPLES = 3  # frames, evenly spread, whose faces are compared with the reference
FLICKER_WIDTH = 192  # flicker is measured on frames scaled to this width
EXTRA_MISSING = "the qa extra is not installed (pip install 'ltx-batch[qa]'), so nothing was scored"

_model: FaceModel | None = None


def face_model() -> FaceModel:
    global _model
    if _model is None:
        _model = FaceModel()
    return _model


def score_video(path: str, reference: str | None = None) -> dict:
    """Every score of the clip at ``path`` (an mp4 with audio); ``reference`` is the item's image, if any."""
    started = time.process_time()
    try:
        model = face_model()
    except QualityUnavailable:
        return unscored(EXTRA_MISSING)
    try:
        record = _score(model, path, reference)
    except Exception as e:  # a scorer's failure must never cost the clip: the record says what happened
        record = unscored(f"scoring failed: {type(e).__name__}: {e}")
    record["seconds"] = round(time.process_time() - started, 3)  # CPU seconds: what scoring costs a worker
    return record


def _score(model: FaceModel, path: str, reference: str | None) -> dict:
    clip = read_clip(path)
    gray = [clip.gray(t) for t in range(len(clip.frames))]
    boxes, searched = track(model, gray)
    found = sum(boxes[t] is not None for t in searched)
    fraction = found / len(searched)
    if not found:
        return unscored("no face found in any frame searched", face_found_fraction=0.0)
    landmarks = np.full((len(gray), 68, 2), np.nan)
    for t, box in enumerate(boxes):
        if box is not None:
            landmarks[t] = model.landmarks(gray[t], box)
    reasons: list[str] = []
    offset, confidence = _lipsync(clip, landmarks, fraction, reasons)
    identity = _identity(model, clip, boxes, searched, reference, reasons)
    return {
        "lipsync_offset_frames": offset,
        "lipsync_confidence": confidence,
        "flicker": _flicker(gray, landmarks),
        "landmark_jitter": measures.landmark_jitter_where_found(landmarks),
        "identity_similarity": identity,
        "face_found_fraction": round(fraction, 4),
        "reason": "; ".join(reasons) or None,
    }


def track(model: FaceModel, gray: list[np.ndarray]) -> tuple[list[Box | None], list[int]]:
    """A face box per frame: searched every ``DETECT_EVERY`` frames near the previous face (every ``SEEK_EVERY``
    while none is found) and in the last frame, interpolated in between. Returns the boxes and the frames
    searched."""
    boxes: list[Box | None] = [None] * len(gray)
    searched: list[int] = []
    last, t = None, 0
    while True:
        boxes[t] = model.detect(gray[t], near=last)
        last = boxes[t] or last
        searched.append(t)
        if t == len(gray) - 1:
            break
        t = min(t + (DETECT_EVERY if boxes[t] else SEEK_EVERY), len(gray) - 1)
    for before, after in zip(searched, searched[1:], strict=False):
        a, b = boxes[before], boxes[after]
        for t in range(before + 1, after):
            w = (t - before) / (after - before)
            boxes[t] = cast(Box, tuple((1 - w) * x + w * y for x, y in zip(a, b, strict=True))) if a and b else a or b
    return boxes, searched


def _lipsync(clip, landmarks: np.ndarray, fraction: float, reasons: list[str]) -> tuple[int | None, float | None]:
    if fraction < MIN_FACE_FRACTION:
        reasons.append(f"lip sync needs a face in at least {MIN_FACE_FRACTION:.0%} of frames, found {fraction:.0%}")
        return None, None
    if clip.audio is None:
        reasons.append("lip sync needs an audio track; the clip has none")
        return None, None
    envelope = measures.loudness(clip.audio, clip.rate, clip.fps, landmarks.shape[0])
    if envelope.std() < measures.MIN_STD:
        reasons.append("the audio is silent, so lip sync cannot be measured")
        return None, None
    opening = measures.fill_gaps(measures.mouth_opening(landmarks))
    if opening.std() < measures.MIN_STD:
        reasons.append("the mouth never moves while the audio does")
        return None, 0.0
    max_lag = max(1, min(round(MAX_LAG_SECONDS * clip.fps), landmarks.shape[0] // 4))
    offset, confidence = measures.lipsync(opening, envelope, max_lag)
    return offset, round(confidence, 4)


def _flicker(gray: list[np.ndarray], landmarks: np.ndarray) -> float:
    height, width = gray[0].shape
    scale = min(1.0, FLICKER_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.stack([np.asarray(Image.fromarray(g).resize(size, Image.Resampling.BILINEAR)) for g in gray]) / 255.0
    keep = np.ones(small.shape[1:], dtype=bool)
    found = ~np.isnan(landmarks[:, 0, 0])
    rows, cols = measures.mouth_region(landmarks[found] * scale, size[1], size[0])
    keep[rows, cols] = False
    return round(measures.flicker(small, keep), 4)


def _identity(model: FaceModel, clip, boxes, searched: list[int], reference: str | None, reasons: list[str]):
    """Lowest similarity of ``IDENTITY_SAMPLES`` frames to the reference image's face (to the clip's first
    face without one): the weakest moment of the clip, where identity drifted most. Only frames where a face
    was found (not interpolated) are compared."""
    faces = [t for t in searched if boxes[t] is not None]
    picks = sorted({faces[round(i)] for i in np.linspace(0, len(faces) - 1, IDENTITY_SAMPLES)})
    embeddings = [model.embedding(np.ascontiguousarray(clip.rgb(t)), boxes[t]) for t in picks]
    if reference is None:
        anchor, embeddings = embeddings[0], embeddings[1:] or embeddings
    else:
        image = np.asarray(Image.open(reference).convert("RGB"))
        box = model.detect(np.asarray(Image.fromarray(image).convert("L")))
        if box is None:
            reasons.append("no face found in the reference image, so identity cannot be compared")
            return None
        anchor = model.embedding(np.ascontiguousarray(image), box)
    distance = max(float(np.linalg.norm(e - anchor)) for e in embeddings)
    return round(float(np.clip(1 - distance, 0, 1)), 4)
