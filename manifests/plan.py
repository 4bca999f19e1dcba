"""The plan: fully resolved items with seeds, frame counts and a stable fingerprint each.

The fingerprint hashes every resolved setting, the input files' size and mtime, and the model bundle's
identity. Labels are left out: relabelling an item (its tags, or which retry candidate it is) must not
re-render it. Two attempts of one item share a fingerprint; an item whose inputs or settings changed under
the same id does not.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ltxcore.media import probe_audio
from ltxcore.request import frames_for_duration
from manifests.item import MEDIA_FIELDS, Item, arrow_schema, merged
from manifests.load import Manifest
from manifests.storage import download, file_identity, is_uri

SEED_SPACE = 2**31
LABELS = ("id", "tags", "retry_of", "candidate")  # fields that name or label an item without changing its render


@dataclass(frozen=True)
class PlannedItem:
    item: Item
    fingerprint: str

    @property
    def id(self) -> str:
        return self.item.id


def derive_seed(run_seed: int, item_id: str) -> int:
    """Deterministic per-item seed, so a re-run or resume reproduces the same clip."""
    digest = hashlib.sha256(f"{run_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE


def audio_duration(uri: str) -> float:
    """Seconds of audio; an object-store file is fetched to a temporary folder to be probed."""
    if not is_uri(uri):
        return probe_audio(uri).duration
    with tempfile.TemporaryDirectory(prefix="ltx-batch-probe-") as folder:
        return probe_audio(str(download(uri, Path(folder) / uri.rsplit("/", 1)[-1]))).duration


def fingerprint(values: dict, media: dict, bundle_identity: dict | None) -> str:
    settings = {k: v for k, v in values.items() if k not in LABELS}
    payload = {"settings": settings, "media": media, "bundle": bundle_identity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def resolve_item(item: Item, run_seed: int) -> Item:
    """Fill the seed and the frame count (the longest 8k+1 that fits the audio window)."""
    seed = item.seed if item.seed is not None else derive_seed(run_seed, item.id)
    num_frames = item.num_frames
    if num_frames is None:
        window = audio_duration(item.audio) - item.audio_start_time
        if item.audio_max_duration is not None:
            window = min(window, item.audio_max_duration)
        num_frames = frames_for_duration(window, item.frame_rate)
    return item.model_copy(update={"seed": seed, "num_frames": num_frames})


def plan(manifest: Manifest, bundle_identity: dict | None = None) -> list[PlannedItem]:
    """Resolve every entry of a *validated* manifest."""
    items = [Item.model_validate(merged(manifest.defaults, e.data)) for e in manifest.entries]
    planned = [PlannedItem(resolve_item(item, manifest.run_seed), "") for item in items]
    return refresh_fingerprints(planned, bundle_identity)


def refresh_fingerprints(planned: list[PlannedItem], bundle_identity: dict | None) -> list[PlannedItem]:
    """Recompute fingerprints from the inputs as they are now: a changed file or model re-renders its items."""
    out = []
    for p in planned:
        values = p.item.values
        media = {name: file_identity(values[name]) if values[name] is not None else None for name in MEDIA_FIELDS}
        out.append(PlannedItem(p.item, fingerprint(values, media, bundle_identity)))
    return out


PLAN_SCHEMA = arrow_schema((pa.field("fingerprint", pa.string()),))


def plan_table(planned: list[PlannedItem]) -> pa.Table:
    rows = [{**p.item.values, "fingerprint": p.fingerprint} for p in planned]
    return pa.Table.from_pylist(rows, schema=PLAN_SCHEMA)


def plan_from_table(table: pa.Table) -> list[PlannedItem]:
    out = []
    for row in table.to_pylist():
        fp = row.pop("fingerprint")
        row["tags"] = dict(row["tags"] or [])
        out.append(PlannedItem(Item.model_validate(row), fp))
    return out
