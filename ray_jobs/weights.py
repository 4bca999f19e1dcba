"""Model weights on a node's local disk: fetched once per node, not once per worker.

A bundle given as ``s3://`` / ``gs://`` URIs is copied into ``$LTX_BATCH_CACHE/weights/<key>/`` the first
time any worker on the node needs it. A file lock makes the other workers on that node wait for the
copy instead of starting their own; a ``complete`` marker, written last, makes a half-finished copy (a
worker killed mid-download) count as absent. The key hashes the URIs with their sizes and mtimes, so a
replaced checkpoint is fetched anew.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

import pyarrow.fs as pafs

from ltxcore.bundle import RELEASED_NAMES
from manifests.storage import download, filesystem, is_uri, stat

CACHE = Path(os.environ.get("LTX_BATCH_CACHE", Path.home() / ".cache" / "ltx-batch"))


def _files(uri: str) -> list[tuple[str, str]]:
    """(relative name, URI) of a file, or of every file under a folder URI (the Gemma root)."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [(uri.rsplit("/", 1)[-1], uri)]
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    prefix = uri.rstrip("/")
    return [(i.path[len(path.rstrip("/")) + 1 :], f"{prefix}/{i.path[len(path.rstrip('/')) + 1 :]}")
            for i in infos if i.type == pafs.FileType.File]  # fmt: skip


def remote_identity(paths: dict[str, str]) -> dict:
    """What the fingerprint records of a remote bundle: every file's name, size and mtime."""
    return {role: [{"name": name, **stat(uri)} for name, uri in sorted(_files(paths[role]))] for role in RELEASED_NAMES}


def localize(paths: dict[str, str], cache: Path = CACHE) -> dict[str, str]:
    """Local paths for a bundle; remote files are fetched into the node cache once, under a lock."""
    if not any(is_uri(p) for p in paths.values()):
        return dict(paths)
    key = hashlib.sha256(json.dumps(remote_identity(paths), sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / "weights" / key
    folder.mkdir(parents=True, exist_ok=True)
    local = {role: str(folder / role / RELEASED_NAMES[role]) for role in RELEASED_NAMES}
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers on this node wait here for the first one
        if not (folder / "complete").exists():
            for role in RELEASED_NAMES:
                target = Path(local[role])
                files = _files(paths[role])
                for name, uri in files:
                    destination = target / name if role == "gemma_root" else target
                    download(uri, destination)
            (folder / "complete").write_text(json.dumps(paths))
    return local
