"""Score one clip: ``score_video(mp4, reference_image, boundaries=...) -> dict`` with the fields of
``quality.score_fields.FIELDS``.

Proxies, not SyncNet: lip sync correlates the gap between the inner lips with the sound's loudness over a
window of lags; flicker and jitter are temporal second differences outside the mouth; identity compares
faces with the reference image's (``quality.face``: the face models and their licences). A long item
rendered as windows (``boundaries``: the frames where window 2, 3, ... begin) also gets each window's lip
sync, identity and colour, a seam score per boundary and the drift from the first window to the last
(``quality.windows``). A score that cannot be measured is None and ``reason`` says why; nothing here raises
for a bad clip, and nothing is downloaded.
"""

from __future__ import annotations

import time
from typing import cast

import numpy as np
from PIL import Image

from quality import face, measures
from quality.face_model import Box, FaceModel, QualityUnavailable
from quality.score_fields import FIELDS, unscored
from quality.video import read_clip
from quality.windows import window_scores

DETECT_EVERY = 2  # frames between face searches while a face is in sight; the box is interpolated in between
SMOOTH_FRAMES = 3  # face boxes are averaged over this many frames either side
SEEK_EVERY = 6  # frames between face searches while none is (a whole-frame search costs more)
MAX_LAG_SECONDS = 0.6  # lip-sync offsets searched: +-15 frames at 25 fps
MIN_FACE_FRACTION = 0.5  # below this, the mouth track is too holey to correlate
IDENTITY_SAMPLES = 3  # frames, evenly spread, whose faces are compared with the reference
FLICKER_WIDTH = 192  # flicker is measured on frames scaled to this width
EXTRA_MISSING = "the qa extra is not installed (pip install 'ltx-batch[qa]'), so nothing was scored"

_models: dict[str, FaceModel] = {}


def face_model(name: str | None = None) -> FaceModel:
    """The face models ``name`` (``quality.face``; the environment's choice when None), loaded once."""
    name = name or face.chosen()
    if name not in _models:
        _models[name] = face.load(name)
    return _models[name]


def score_video(
    path: str, reference: str | None = None, boundaries: list[int] | None = None, face_models: str | None = None
) -> dict:
    """Every score of the clip at ``path`` (an mp4 with audio); ``reference`` is the item's image, if any;
    ``boundaries`` are the frames where windows 2, 3, ... begin (None or empty: one window)."""
    started = time.process_time()
    try:
        model = face_model(face_models)
    except QualityUnavailable:
        return unscored(EXTRA_MISSING)
    try:
        record = _score(model, path, reference, sorted(set(boundaries or ())))
    except Exception as e:  # a scorer's failure must never cost the clip: the record says what happened
        record = unscored(f"scoring failed: {type(e).__name__}: {e}")
    record["seconds"] = round(time.process_time() - started, 3)  # CPU seconds: what scoring costs a worker
    return record


def _score(model: FaceModel, path: str, reference: str | None, boundaries: list[int]) -> dict:
    clip = read_clip(path)
    gray = [clip.gray(t) for t in range(len(clip.frames))]
    outside = [b for b in boundaries if not 0 < b < len(gray)]
    if outside:
        raise ValueError(f"window boundaries {outside} are outside the clip's {len(gray)} frames")
    boxes, searched = track(model, gray)
    found = sum(boxes[t] is not None for t in searched)
    fraction = found / len(searched)
    if not found:
        return unscored("no face found in any frame searched", face_found_fraction=0.0)
    layout = model.layout
    landmarks = np.full((len(gray), layout.points, 2), np.nan)
    for t, box in enumerate(boxes):
        if box is not None:
            landmarks[t] = model.landmarks(gray[t], box)
    reasons: list[str] = []
    offset, confidence = lipsync(clip, landmarks, layout, fraction, reasons)
    anchor = _anchor(model, clip, boxes, searched, reference, reasons)
    faces = [t for t in searched if boxes[t] is not None]
    small = _small(gray)

    def identity(frames: range) -> float | None:
        return None if anchor is None else _identity(model, clip, boxes, [t for t in faces if t in frames], anchor)

    def features(frames: range) -> np.ndarray | None:
        inside = [t for t in faces if t in frames]
        if not inside:
            return None
        middle = inside[len(inside) // 2]
        return model.identity_features(np.ascontiguousarray(clip.rgb(middle)), cast(Box, boxes[middle]))

    record = {
        "lipsync_offset_frames": offset,
        "lipsync_confidence": confidence,
        "flicker": _flicker(small, landmarks, layout, gray[0].shape),
        "landmark_jitter": measures.landmark_jitter_where_found(landmarks, layout),
        "identity_similarity": identity(range(len(gray))),
        "face_found_fraction": round(fraction, 4),
    }
    reference_colour = None if reference is None else np.asarray(Image.open(reference).convert("RGB")).mean((0, 1))
    windows = window_scores(
        clip,
        small,
        boundaries,
        lambda frames: lipsync(clip, landmarks, layout, fraction, [], frames),
        identity,
        features,
        model.similarity,
        reference_colour,
    )
    merged = {**record, **windows, "reason": "; ".join(reasons) or None}
    return {name: merged[name] for name in FIELDS if name != "seconds"}


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
    return smoothed(boxes), searched


def smoothed(boxes: list[Box | None]) -> list[Box | None]:
    """Each box averaged with its neighbours within ``SMOOTH_FRAMES`` (those that have one): a detector's
    frame-to-frame wobble would otherwise move every landmark with it (jitter that the face does not have)."""
    out: list[Box | None] = []
    for t, box in enumerate(boxes):
        near = [b for b in boxes[max(0, t - SMOOTH_FRAMES) : t + SMOOTH_FRAMES + 1] if b is not None]
        out.append(None if box is None else cast(Box, tuple(np.mean(near, axis=0))))
    return out


def lipsync(
    clip, landmarks: np.ndarray, layout, fraction: float, reasons: list[str], frames: range | None = None
) -> tuple[int | None, float | None]:
    """(offset, confidence) over ``frames`` (every frame when None)."""
    if fraction < MIN_FACE_FRACTION:
        reasons.append(f"lip sync needs a face in at least {MIN_FACE_FRACTION:.0%} of frames, found {fraction:.0%}")
        return None, None
    if clip.audio is None:
        reasons.append("lip sync needs an audio track; the clip has none")
        return None, None
    frames = frames or range(landmarks.shape[0])
    envelope = measures.loudness(clip.audio, clip.rate, clip.fps, landmarks.shape[0])[frames.start : frames.stop]
    if envelope.std() < measures.MIN_STD:
        reasons.append("the audio is silent, so lip sync cannot be measured")
        return None, None
    signal = measures.mouth_opening(landmarks, layout)[frames.start : frames.stop]
    if np.isnan(signal).all():
        reasons.append("no face in these frames")
        return None, None
    opening = measures.fill_gaps(signal)
    if opening.std() < measures.MIN_STD:
        reasons.append("the mouth never moves while the audio does")
        return None, 0.0
    max_lag = max(1, min(round(MAX_LAG_SECONDS * clip.fps), len(frames) // 4))
    offset, confidence = measures.lipsync(opening, envelope, max_lag)
    return offset, round(confidence, 4)


def _small(gray: list[np.ndarray]) -> np.ndarray:
    """The frames scaled to ``FLICKER_WIDTH`` wide, 0..1: what flicker and seams compare."""
    height, width = gray[0].shape
    scale = min(1.0, FLICKER_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.stack([np.asarray(Image.fromarray(g).resize(size, Image.Resampling.BILINEAR)) for g in gray]) / 255.0


def _flicker(small: np.ndarray, landmarks: np.ndarray, layout, shape: tuple[int, ...]) -> float:
    scale = small.shape[2] / shape[1]
    keep = np.ones(small.shape[1:], dtype=bool)
    found = ~np.isnan(landmarks[:, 0, 0])
    rows, cols = measures.mouth_region(landmarks[found] * scale, layout, small.shape[1], small.shape[2])
    keep[rows, cols] = False
    return round(measures.flicker(small, keep), 4)


def _anchor(model: FaceModel, clip, boxes, searched: list[int], reference: str | None, reasons: list[str]):
    """The face identity is measured against: the reference image's, or the clip's first without one."""
    if reference is None:
        first = next(t for t in searched if boxes[t] is not None)
        return model.identity_features(np.ascontiguousarray(clip.rgb(first)), boxes[first])
    image = np.asarray(Image.open(reference).convert("RGB"))
    box = model.detect(np.asarray(Image.fromarray(image).convert("L")))
    if box is None:
        reasons.append("no face found in the reference image, so identity cannot be compared")
        return None
    return model.identity_features(np.ascontiguousarray(image), box)


def _identity(model: FaceModel, clip, boxes, faces: list[int], anchor) -> float | None:
    """Lowest similarity to ``anchor`` of ``IDENTITY_SAMPLES`` frames evenly spread over ``faces`` (frames where
    a face was found, not interpolated): the weakest moment, where identity drifted most."""
    if not faces:
        return None
    picks = sorted({faces[round(i)] for i in np.linspace(0, len(faces) - 1, IDENTITY_SAMPLES)})
    features = [model.identity_features(np.ascontiguousarray(clip.rgb(t)), boxes[t]) for t in picks]
    return round(min(model.similarity(f, anchor) for f in features), 4)
