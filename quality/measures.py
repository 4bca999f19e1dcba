"""The measures, on plain arrays: mouth opening, loudness, lip-sync offset and confidence, flicker, jitter,
aligned face patches, seams and colour.

Landmarks come in a ``Layout``: dlib's 68-point iBUG layout (``IBUG_68``) or MediaPipe's 468-point face mesh
(``MESH_468``); the measures read the named groups, never raw indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MIN_STD = 1e-6


@dataclass(frozen=True)
class Layout:
    """Where the parts of a face are in a landmark model's output."""

    points: int
    right_eye: tuple[int, ...]
    left_eye: tuple[int, ...]
    inner_lip_pairs: tuple[tuple[int, int], ...]  # an upper inner lip point above its lower one
    lips: tuple[int, ...]  # every lip point
    still: tuple[int, ...]  # brows, nose, eyes: they should not move with speech
    mouth_corners: tuple[int, int]
    lower_lip_bottom: int
    chin: int
    under_nose: int


IBUG_68 = Layout(
    points=68,
    right_eye=tuple(range(36, 42)),
    left_eye=tuple(range(42, 48)),
    inner_lip_pairs=((61, 67), (62, 66), (63, 65)),
    lips=tuple(range(48, 68)),
    still=tuple(range(17, 48)),
    mouth_corners=(48, 54),
    lower_lip_bottom=57,
    chin=8,
    under_nose=33,
)
_MESH_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_MESH_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)  # without the corners
_MESH_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
MESH_468 = Layout(
    points=468,
    right_eye=(33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    left_eye=(263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    inner_lip_pairs=((80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318)),
    lips=_MESH_OUTER + _MESH_UPPER_INNER + _MESH_LOWER_INNER,
    still=(70, 63, 105, 66, 107, 300, 293, 334, 296, 336, 6, 197, 195, 5, 33, 133, 362, 263),
    mouth_corners=(61, 291),
    lower_lip_bottom=17,
    chin=152,
    under_nose=2,
)


def _centres(landmarks: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    return landmarks[..., layout.right_eye, :].mean(axis=-2), landmarks[..., layout.left_eye, :].mean(axis=-2)


def eye_distance(landmarks: np.ndarray, layout: Layout) -> np.ndarray:
    """Distance between the eye centres per frame: the face's scale, steady while the mouth moves."""
    right, left = _centres(landmarks, layout)
    return np.linalg.norm(left - right, axis=-1)


def mouth_opening(landmarks: np.ndarray, layout: Layout) -> np.ndarray:
    """Gap between the inner lips per frame (mean over the layout's pairs: 3 for dlib, 7 across the mesh's
    mouth), in eye distances; NaN where a frame has no landmarks."""
    gaps = [landmarks[:, low, 1] - landmarks[:, up, 1] for up, low in layout.inner_lip_pairs]
    return np.mean(gaps, axis=0) / eye_distance(landmarks, layout)


def loudness(samples: np.ndarray, rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the mono ``samples`` during each video frame (frame ``t`` spans ``[t, t+1) / fps``)."""
    edges = np.round(np.arange(frames + 1) / fps * rate).astype(int)
    out = np.zeros(frames)
    for t in range(frames):
        chunk = samples[edges[t] : edges[t + 1]]
        out[t] = np.sqrt(np.mean(chunk**2)) if chunk.size else 0.0
    return out


def fill_gaps(series: np.ndarray) -> np.ndarray:
    """NaNs replaced by linear interpolation between their measured neighbours (held at the ends)."""
    known = np.flatnonzero(~np.isnan(series))
    return np.interp(np.arange(series.size), known, series[known])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > MIN_STD else 0.0


def lag_correlations(opening: np.ndarray, envelope: np.ndarray, max_lag: int) -> dict[int, float]:
    """Pearson correlation of ``opening[t]`` with ``envelope[t + lag]`` over the frames both cover, per lag."""
    n = opening.size
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -lag), min(n, n - lag)
        out[lag] = _pearson(opening[lo:hi], envelope[lo + lag : hi + lag])
    return out


def lipsync(opening: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(offset, confidence): the lag where mouth and loudness agree best, and how far that peak stands above
    the median correlation across lags (SyncNet's LSE-C idea: a clear peak means a sure offset).

    A positive offset means the sound comes that many frames after the mouth moves."""
    correlations = lag_correlations(opening, envelope, max_lag)
    lags, values = np.array(list(correlations)), np.array(list(correlations.values()))
    best = int(np.argmax(values))
    return int(lags[best]), float(values[best] - np.median(values))


def flicker(gray: np.ndarray, keep: np.ndarray) -> float:
    """Mean absolute second difference in time of ``gray`` (frames, h, w; 0..1) over the ``keep`` mask, in %
    of the full range. Steady motion has a small second difference; a frame that jumps and jumps back has a
    large one."""
    if gray.shape[0] < 3:
        return 0.0
    jolt = np.abs(gray[2:] - 2 * gray[1:-1] + gray[:-2])
    return float(100 * jolt[:, keep].mean())


def landmark_jitter_where_found(landmarks: np.ndarray, layout: Layout) -> float | None:
    """Mean second difference in time of the brow, nose and eye landmarks, in % of the eye distance, over
    the runs of three frames that all have landmarks (NaN rows have none); None without any such run."""
    points = landmarks[:, layout.still]
    if points.shape[0] < 3:
        return None
    jolt = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=2).mean(axis=1)
    jolt = jolt / eye_distance(landmarks, layout)[1:-1]
    measured = ~np.isnan(jolt)
    return round(float(100 * jolt[measured].mean()), 4) if measured.any() else None


def _clamp(value: float, high: int) -> int:
    return int(np.clip(round(value), 0, high))


def mouth_region(landmarks: np.ndarray, layout: Layout, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns that speech moves (lips down to the chin, over every frame), to leave out of flicker."""
    lips, chin, nose = landmarks[:, layout.lips], landmarks[:, layout.chin], landmarks[:, layout.under_nose]
    margin = 0.5 * (lips[..., 0].max() - lips[..., 0].min())
    top, bottom = nose[:, 1].min(), chin[:, 1].max() + margin / 2
    left, right = lips[..., 0].min() - margin, lips[..., 0].max() + margin
    return slice(_clamp(top, height), _clamp(bottom, height)), slice(_clamp(left, width), _clamp(right, width))


PATCH_X = (-0.6, 1.6)  # the aligned patch, in eye distances from the right eye's centre (eyes at x = 0 and 1)
PATCH_Y = (-0.7, 0.75)  # brows to the top lip: the part of the face that speech leaves alone
PATCH_STEP = 0.05  # eye distances per patch pixel (45 x 29)


PATCH_DETAIL_SIGMA = 2.0  # patch pixels: detail finer than this blur is what tells two faces apart


def aligned_patch(gray: np.ndarray, landmarks: np.ndarray, layout: Layout) -> np.ndarray:
    """The face's upper part resampled in eye coordinates (rotation and scale removed), keeping only its fine
    detail (the patch minus its blur: lighting and the layout every face shares drop out), norm 1: the dot
    product of two patches compares two faces' features."""
    right, left = _centres(landmarks, layout)
    ex, ey = left - right  # the unit of the patch's x axis, in image pixels
    ox, oy = right
    # image point of patch (u, v) = origin + u * (ex, ey) + v * (-ey, ex); PIL's affine maps output to input
    s = PATCH_STEP
    u0, v0 = PATCH_X[0], PATCH_Y[0]
    coeffs = (s * ex, -s * ey, ox + u0 * ex - v0 * ey, s * ey, s * ex, oy + u0 * ey + v0 * ex)
    size = (round((PATCH_X[1] - PATCH_X[0]) / s), round((PATCH_Y[1] - PATCH_Y[0]) / s))
    image = Image.fromarray(np.ascontiguousarray(gray))
    patch = np.asarray(image.transform(size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR), np.float64)
    detail = (patch - _blur(patch, PATCH_DETAIL_SIGMA)).ravel()
    detail -= detail.mean()
    return detail / max(float(np.linalg.norm(detail)), MIN_STD)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (edges repeated), separable."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, radius, mode="edge")
    width = 2 * radius + 1
    height, wide = image.shape
    rows = np.zeros((padded.shape[0], wide))
    for i in range(width):
        rows += kernel[i] * padded[:, i : i + wide]
    out = np.zeros((height, wide))
    for i in range(width):
        out += kernel[i] * rows[i : i + height]
    return out


def frame_change(small: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each frame and the next (frames, h, w; 0..1), in % of the full
    range: ``out[t]`` is the change from frame ``t`` to ``t + 1``."""
    return 100 * np.abs(np.diff(small, axis=0)).mean(axis=(1, 2))


MIN_CHANGE = 0.05  # % of range: below this a window counts as still, so encoder noise cannot make a seam


def seam_scores(change: np.ndarray, starts: list[int]) -> list[float]:
    """Per boundary (the first frame of window 2, 3, ...): the change across it over the median change inside
    the two windows it joins; 1.0 means the join looks like any other frame step."""
    edges = [0, *starts, change.size + 1]
    inside = [change[a : b - 1] for a, b in zip(edges, edges[1:], strict=False)]  # steps within each window
    scores = []
    for k, start in enumerate(starts):
        steps = np.concatenate([inside[k], inside[k + 1]])
        typical = max(float(np.median(steps)) if steps.size else 0.0, MIN_CHANGE)
        scores.append(round(float(change[start - 1]) / typical, 4))
    return scores


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two mean colours (RGB, 0..255), in % of the full range."""
    return round(float(100 * np.linalg.norm(np.asarray(a) - np.asarray(b)) / 255), 4)
