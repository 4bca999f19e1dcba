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
from pathlib import Path

from ltxcore.artifacts import cache_root
from ltxcore.bundle import OPTIONAL_NAMES, RELEASED_NAMES
from manifests.model_section import bundle_files
from storage.fs import download, files_under, is_uri

CACHE = cache_root()


def localize(paths: dict[str, str], cache: Path = CACHE) -> dict[str, str]:
    """Local paths for a bundle; remote files are fetched into the node cache once, under a lock."""
    if not any(is_uri(p) for p in paths.values()):
        return dict(paths)
    key = hashlib.sha256(json.dumps(bundle_files(paths), sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / "weights" / key
    folder.mkdir(parents=True, exist_ok=True)
    names = {**RELEASED_NAMES, **OPTIONAL_NAMES}
    local = {role: str(folder / role / names[role]) for role in paths}
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers on this node wait here for the first one
        if not (folder / "complete").exists():
            for role in paths:
                target = Path(local[role])
                for name, uri in files_under(paths[role]):
                    destination = target / name if role == "gemma_root" else target
                    download(uri, destination)
            (folder / "complete").write_text(json.dumps(paths))
    return local
