"""`make demo`: the main job on a local Ray, on the CPU, with the tiny random bundle.

Builds the tiny bundle into a cache folder if it is missing, renders the example lesson manifest (run
again, it resumes and finds nothing left to do), and says where everything is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fixtures.random_bundle import QUICK_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LTX_BATCH_CACHE", Path.home() / ".cache" / "ltx-batch"))
RUN = ROOT / "demo-out" / "lesson-run"


def set_flags(**settings: object) -> list[str]:
    """``--set NAME=VALUE`` arguments, one pair per setting."""
    return [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]


# The demo's pictures: the tiny bundle's quick settings at 256x384 in 8 steps; drills: 1 s quick clips.
TINY = set_flags(**{**QUICK_SETTINGS, "height": 256, "width": 384, "num_inference_steps": 8})
QUICK = set_flags(**QUICK_SETTINGS, audio_max_duration=1.0)


def main() -> int:
    from fixtures.random_bundle import make_tiny_bundle
    from ltxcore.bundle import ModelBundle
    from ltxcore.errors import BundleError
    from ray_jobs.render import main as render
    from runstore.run_folder import RunFolder

    folder = CACHE / "tiny-bundle"
    try:
        ModelBundle.from_folder(folder)
    except BundleError:
        print(f"building the tiny random bundle in {folder} (random weights: the pictures will be noise)")
        make_tiny_bundle(folder)
    if RunFolder(str(RUN)).exists():
        args = ["--resume", str(RUN)]
    else:
        manifest = ROOT / "manifests" / "examples" / "lesson" / "lesson.yaml"
        args = [str(manifest), "--out", str(RUN), "--bundle", str(folder), *TINY]
    return render(args)


if __name__ == "__main__":
    sys.exit(main())
