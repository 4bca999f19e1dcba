"""`make demo`: build the tiny bundle once into a cache folder, then render a clip on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("LTX_BATCH_CACHE", Path.home() / ".cache" / "ltx-batch"))
EXAMPLE_AUDIO = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "lesson" / "en.ogg"


def main() -> int:
    from ltxcore.bundle import ModelBundle
    from ltxcore.errors import BundleError
    from ltxcore.tiny import make_tiny_bundle

    folder = CACHE / "tiny-bundle"
    try:
        ModelBundle.from_folder(folder)
    except BundleError:
        print(f"building the tiny random bundle in {folder}")
        make_tiny_bundle(folder)
    out = Path("demo-out")
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "ltxcore.cli", "--bundle", str(folder), "--audio", str(EXAMPLE_AUDIO),
               "--prompt", "A friendly teacher talks to the camera in a bright classroom", "--height", "256",
               "--width", "384", "--steps", "8", "--stg-blocks", "1", "--out", str(out / "lesson-en.mp4")]  # fmt: skip
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
