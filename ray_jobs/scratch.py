"""A process's scratch folder, on its node's own disk: ``$LTX_BATCH_CACHE/scratch/<host>-<pid>-<random>``. A
worker's holds its fetched media, mp4s before upload and the windows of a remote run; a command's (the driver's,
``status``'s, ...) holds its temporary files: a remote manifest's copy, a file staged for upload.

A process that ends cleanly removes its own. One that was killed (SIGKILL, ``ray.kill``, a driver stopped or lost)
cannot, and its finished mp4s and partial files would pile up in the system's temp folder; so each worker that
starts (and each command) removes the scratch folders of this host's processes that are no longer alive: the next
command, run or resume on the node cleans up after a killed one.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def temporary_files_in_scratch() -> Iterator[Path]:
    """This command's temporary files (``tempfile``'s, whoever makes them) in a scratch folder of its own, removed
    when it ends. Not for workers: torch's compile cache lives under the temporary folder and must outlive them."""
    folder = scratch_folder()
    before, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = before
        shutil.rmtree(folder, ignore_errors=True)
