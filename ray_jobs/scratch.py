"""A worker's scratch folder (fetched media, mp4s before upload, windows of a remote run), on its node's own disk:
``$LTX_BATCH_CACHE/scratch/<host>-<pid>-<random>``.

A worker that ends cleanly removes its own. One that was killed (SIGKILL, ``ray.kill``, a driver stopped or lost)
cannot, and its finished mp4s and partial files would pile up in the system's temp folder; so each worker that
starts removes the scratch folders of this host's workers that are no longer alive: the next run or resume on
the node cleans up after a killed one.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import psutil

from ltxcore.artifacts import cache_root


def scratch_folder(root: Path | None = None) -> Path:
    """A new scratch folder for this process, after removing those of this host's processes that are gone."""
    root = root if root is not None else cache_root() / "scratch"
    host = socket.gethostname()
    for leftover in root.glob(f"{host}-*-*"):
        pid = leftover.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
    folder = root / f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder
