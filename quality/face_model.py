"""What every face model gives the scores: a box, landmarks in its layout, identity features and their
similarity. Its own module so the model implementations and the chooser (``quality.face``) import it, not
each other."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from quality.measures import Layout

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


class QualityUnavailable(ImportError):
    """The extra of the chosen face models is not installed."""


class FaceModel(Protocol):
    layout: Layout

    @property
    def version(self) -> str: ...
    def detect(self, gray: np.ndarray, near: Box | None = None) -> Box | None: ...
    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray: ...
    def identity_features(self, rgb: np.ndarray, box: Box) -> np.ndarray: ...
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float: ...
