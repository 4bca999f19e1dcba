"""The measures, on plain arrays: mouth opening, loudness, lip-sync offset and confidence, flicker, jitter.

Landmarks follow the 68-point iBUG layout: 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 lips (60-67 inner).
"""

from __future__ import annotations

import numpy as np

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper inner lip point above its lower inner lip point
STILL_POINTS = slice(17, 48)  # brows, nose, eyes: they should not move with speech
MIN_STD = 1e-6


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres per frame: the face's scale, steady while the mouth moves."""
    left, right = landmarks[:, 36:42].mean(axis=1), landmarks[:, 42:48].mean(axis=1)
    return np.linalg.norm(right - left, axis=1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Gap between the inner lips per frame, in eye distances; NaN where a frame has no landmarks."""
    gaps = [landmarks[:, low, 1] - landmarks[:, up, 1] for up, low in INNER_LIP_PAIRS]
    return np.mean(gaps, axis=0) / eye_distance(landmarks)


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


def landmark_jitter_where_found(landmarks: np.ndarray) -> float | None:
    """Mean second difference in time of the brow, nose and eye landmarks, in % of the eye distance, over
    the runs of three frames that all have landmarks (NaN rows have none); None without any such run."""
    points = landmarks[:, STILL_POINTS]
    if points.shape[0] < 3:
        return None
    jolt = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=2).mean(axis=1)
    jolt = jolt / eye_distance(landmarks)[1:-1]
    measured = ~np.isnan(jolt)
    return round(float(100 * jolt[measured].mean()), 4) if measured.any() else None


def _clamp(value: float, high: int) -> int:
    return int(np.clip(round(value), 0, high))


def mouth_region(landmarks: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns that speech moves (lips down to the chin, over every frame), to leave out of flicker."""
    lips, chin, nose = landmarks[:, 48:68], landmarks[:, 8], landmarks[:, 33]
    margin = 0.5 * (lips[..., 0].max() - lips[..., 0].min())
    top, bottom = nose[:, 1].min(), chin[:, 1].max() + margin / 2
    left, right = lips[..., 0].min() - margin, lips[..., 0].max() + margin
    return slice(_clamp(top, height), _clamp(bottom, height)), slice(_clamp(left, width), _clamp(right, width))
