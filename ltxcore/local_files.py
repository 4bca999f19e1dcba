"""A local file as the worker's caches know it (LoRA weights, image latents, audio read ahead): the file itself,
whatever path or link names it (device and inode), and its version (size and modification time), so a cache
entry is never served for a file that changed under the same name.

Fingerprints of the plan use ``storage.fs.file_identity`` instead: size and time only, of local files and
objects alike, so that a run's fingerprints survive copying its inputs to another disk or bucket.
"""

from __future__ import annotations

import os

FileIdentity = tuple[int, int, int, int]


def file_identity(path: str) -> FileIdentity:
    """(device, inode, size, mtime_ns) of ``path``; raises ``OSError``."""
    found = os.stat(path)
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns
