"""Faces through dlib (the opt-in ``qa-dlib`` extra, ``face_models="dlib68"``): a HOG detector, 68 landmarks
and a 128-d identity embedding, from ``dlib-bin`` with ``face-recognition-models`` (the model files, inside the
package; nothing is downloaded at run time).

LICENCE: dlib's model notes (davisking/dlib-models, README) say ``shape_predictor_68_face_landmarks.dat`` was
trained on iBUG 300-W, whose licence excludes commercial use, so the model "can't be used in a commercial
product". That is why it is no longer the default (``quality.face_mesh`` is). The same README releases
dlib's other models, the face-recognition ResNet among them, into the public domain.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from quality.face_model import Box, QualityUnavailable
from quality.measures import IBUG_68, Layout

DETECT_SHORT_SIDE = 384  # a whole frame is searched at this size: a presenter's face stays above dlib's 80 px
TRACK_FACE_SIDE = 100  # near the last face, the search window is scaled so the face is about this big
PREDICTOR = "shape_predictor_68_face_landmarks.dat"
ENCODER = "dlib_face_recognition_resnet_model_v1.dat"


def model_folder() -> Path:
    """``face_recognition_models``'s folder, found without importing it (its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise QualityUnavailable("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceModel:
    """Loaded once per process; the landmark and embedding models load on the first face."""

    layout: Layout = IBUG_68

    def __init__(self):
        try:
            import dlib
        except ImportError as e:
            raise QualityUnavailable(str(e)) from e
        self.folder = model_folder()
        self.dlib: Any = dlib  # a compiled module without type stubs
        self.detector = self.dlib.get_frontal_face_detector()
        self._predictor: Any = None
        self._encoder: Any = None

    @property
    def version(self) -> str:
        return f"dlib {self.dlib.__version__}"

    def detect(self, gray: np.ndarray, near: Box | None = None) -> Box | None:
        """The largest face: first in a window around ``near`` (cheap), else in the whole frame."""
        if near is not None:
            side = max(near[2] - near[0], near[3] - near[1])
            m = side / 2
            window = (near[0] - m, near[1] - m, near[2] + m, near[3] + m)
            found = self._search(gray, window, TRACK_FACE_SIDE / side)
            if found is not None:
                return found
        height, width = gray.shape
        return self._search(gray, (0, 0, width, height), DETECT_SHORT_SIDE / min(height, width))

    def _search(self, gray: np.ndarray, window: Box, scale: float) -> Box | None:
        height, width = gray.shape
        left, top = max(0, int(window[0])), max(0, int(window[1]))
        right, bottom = min(width, int(window[2])), min(height, int(window[3]))
        if right - left < 16 or bottom - top < 16:
            return None
        crop = Image.fromarray(np.ascontiguousarray(gray[top:bottom, left:right]))
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        faces = self.detector(np.asarray(crop.resize(size, Image.Resampling.BILINEAR)), 0)
        if not faces:
            return None
        face = max(faces, key=lambda r: r.area())
        sx, sy = crop.width / size[0], crop.height / size[1]
        return (left + face.left() * sx, top + face.top() * sy, left + face.right() * sx, top + face.bottom() * sy)

    def _rect(self, box: Box):
        return self.dlib.rectangle(*(round(v) for v in box))

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The 68 landmarks (x, y) of the face in ``box``."""
        shape = self._shape(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def identity_features(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The face's 128-d embedding (aligned by its landmarks); dlib calls two faces one person below 0.6
        Euclidean distance."""
        if self._encoder is None:
            self._encoder = self.dlib.face_recognition_model_v1(str(self.folder / ENCODER))
        return np.array(self._encoder.compute_face_descriptor(rgb, self._shape(rgb, box)))

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.clip(1 - np.linalg.norm(a - b), 0, 1))

    def _shape(self, image: np.ndarray, box: Box):
        """dlib's landmark shape of the face in ``box`` (the predictor loads on the first face)."""
        if self._predictor is None:
            self._predictor = self.dlib.shape_predictor(str(self.folder / PREDICTOR))
        return self._predictor(image, self._rect(box))
