"""The artifact cache: where a worker's start-up work (compiled graphs, FP8-quantized weights) persists across
runs, resumes and workers, so that a cluster pays for it once rather than every worker of every run.

The user chooses the folder (``--cache``, a local path or an ``s3://`` / ``gs://`` URI); without one, each node
uses ``$LTX_BATCH_CACHE/artifacts`` (default ``~/.cache/ltx-batch/artifacts``). Artifacts are keyed by the
bundle's identity (its files' names, sizes and mtimes, its quantization and transformer: the same record
fingerprints use), so a replaced checkpoint never loads what was made for the old one.

Kept free of torch: the command line and the driver import it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from storage.fs import join


def cache_root() -> Path:
    """The node's cache of ltx-batch (fetched weights, artifacts): ``$LTX_BATCH_CACHE``, else ``~/.cache/ltx-batch``."""
    return Path(os.environ.get("LTX_BATCH_CACHE", Path.home() / ".cache" / "ltx-batch"))


def default_folder() -> str:
    """The artifact cache of a worker not given ``--cache``: on its own node's disk."""
    return str(cache_root() / "artifacts")


def bundle_digest(identity: dict) -> str:
    """A short name for a bundle's identity (``manifests.model_section.bundle_identity``)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ArtifactCache:
    """One bundle's artifacts in one cache folder: ``compile/`` holds compiled graphs (``ltxcore.compile_cache``),
    ``fp8/`` quantized transformers (``ltxcore.fp8_store``)."""

    folder: str  # a local path or a URI
    bundle: str  # ``bundle_digest`` of the bundle the artifacts are made from

    @classmethod
    def of(cls, folder: str | None, identity: dict) -> ArtifactCache:
        """The cache in ``folder`` (None: this node's default) for the bundle of ``identity``."""
        return cls(folder or default_folder(), bundle_digest(identity))

    @property
    def compile_folder(self) -> str:
        return join(self.folder, "compile")

    @property
    def weights_folder(self) -> str:
        return join(self.folder, "fp8")
