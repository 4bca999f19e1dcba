"""The plan: fully resolved items with seeds, frame counts and a stable fingerprint each.

The fingerprint hashes every resolved setting, the input files' size and mtime (each image's and each LoRA's
too), and the model bundle's identity. Labels are left out: relabelling an item (its tags, or which retry
candidate it is) must not re-render it. Two attempts of one item share a fingerprint; an item whose inputs or
settings changed under the same id does not. A setting added since a run was planned is left out while it holds
the value that renders as before it existed (an empty ``loras``, no ``images``, ...), so resuming an older run
keeps its finished items.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import pyarrow as pa
from pydantic import BaseModel

from ltxcore.errors import RenderInputError
from ltxcore.request import frames_for_audio
from ltxcore.windows import DEFAULT_CONTEXT_FRAMES, DEFAULT_WINDOW_SECONDS, Window, plan_windows
from manifests.item import KINDS, Item, arrow_schema, media_paths, merged
from manifests.load import Manifest
from manifests.media_facts import MediaFacts
from manifests.ticker import Ticker
from manifests.windows import WINDOW_STRUCT, from_rows, item_windows, settings_of, to_rows

SEED_SPACE = 2**31
LABELS = ("id", "tags", "retry_of", "candidate")  # fields that name or label an item without changing its render
# Settings added after runs were first planned, with the value that renders as before they existed. Resuming a
# run planned before a setting existed gives its items this value (``plan_from_table``), and the fingerprint
# hashes a setting only when set away from it, so a run planned before they existed keeps its fingerprints and
# resumes without re-rendering what is done.
HASHED_WHEN_SET = {
    "pipeline": "two-stage",
    "loras": [],
    "audio_conditioning_noise_db": None,
    "audio_conditioning_loudness_lufs": None,
    "images": None,
    "enhance_prompt": False,
    "frozen_audio_sigma": "step",
    "window_seconds": DEFAULT_WINDOW_SECONDS,
    "context_frames": DEFAULT_CONTEXT_FRAMES,
    "long_form": "continuous",
}
# Which draft a promoted item finalises (``ltx-batch promote``): the draft run's id and the item's id there.
PROMOTED_FROM = pa.struct([pa.field("run_id", pa.string()), pa.field("item_id", pa.string())])


@dataclass(frozen=True)
class RenderWindow:
    """A ``cuts`` item's unit of work that renders one of its windows into the run folder (no row, no mp4)."""

    index: int


@dataclass(frozen=True)
class JoinWindows:
    """A ``cuts`` item's last unit of work: its finished windows joined into its mp4, which gets its row."""


@dataclass(frozen=True)
class PlannedItem:
    item: Item
    fingerprint: str
    promoted_from: dict | None = None  # {"run_id": ..., "item_id": ...}, see PROMOTED_FROM
    prompt_enhanced: str | None = None  # an enhancement an earlier attempt made and recorded; used, not redone
    windows: tuple[Window, ...] = ()  # the model windows it renders as (manifests/windows.py); () : one
    part: RenderWindow | JoinWindows | None = None  # a ``cuts`` item's unit of work; None: the whole item

    @property
    def window_plan(self) -> tuple[Window, ...]:
        """Its windows; a plan written before windows existed renders one window, or, for a clip longer than
        one window, windows without pause detection."""
        if self.windows:
            return self.windows
        item = self.item
        frames = item.num_frames or 1
        return tuple(plan_windows(frames, item.frame_rate, settings_of(item)))

    @property
    def id(self) -> str:
        return self.item.id


def derive_seed(run_seed: int, item_id: str) -> int:
    """Deterministic per-item seed, so a re-run or resume reproduces the same clip."""
    digest = hashlib.sha256(f"{run_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE


def fingerprint(values: dict, media: dict, bundle_identity: dict | None) -> str:
    unset = [name for name, default in HASHED_WHEN_SET.items() if values.get(name) == default]
    settings = {k: v for k, v in values.items() if k not in (*LABELS, *unset)}
    payload = {"settings": settings, "media": media, "bundle": bundle_identity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def resolve_item(item: Item, run_seed: int, facts: MediaFacts) -> Item:
    """Fill the seed and the frames shown (as many as cover the audio window: ``frames_for_audio``), its values
    as its plan row reads back (``_stored_update``)."""
    seed = item.seed if item.seed is not None else derive_seed(run_seed, item.id)
    num_frames = item.num_frames
    if num_frames is None:
        audio = facts.audio(str(item.audio))
        if audio.seconds is None:
            raise RenderInputError("audio", audio.problem or f"{item.audio} cannot be read.")
        num_frames = frames_for_audio(item, audio.seconds)
    stored = _stored_update(item, lambda name: KINDS[name].arrow)
    return item.model_copy(update={**stored, "seed": seed, "num_frames": num_frames})


def _stored_update(model: BaseModel, kind: Callable[[str], pa.DataType]) -> dict:
    """The fields of ``model`` (an item, a LoRA, an image) that its plan.parquet row gives back otherwise: a number
    written whole, which a model keeps an int (as written), is a float there. A new run renders and fingerprints
    its items so, as a resume of it does. ``kind``: a field's column type."""
    update = {}
    for name, value in vars(model).items():
        stored = _as_stored(value, kind(name))
        if stored is not value:
            update[name] = stored
    return update


def _as_stored(value: object, kind: pa.DataType) -> object:
    if isinstance(value, BaseModel):
        update = _stored_update(value, lambda name: kind.field(name).type)
        return value.model_copy(update=update) if update else value
    if isinstance(value, list) and pa.types.is_list(kind):
        stored = [_as_stored(v, kind.value_type) for v in value]
        return stored if any(new is not old for new, old in zip(stored, value, strict=True)) else value
    return float(value) if pa.types.is_floating(kind) and type(value) is int else value


def planned_item(item: Item, run_seed: int, facts: MediaFacts | None = None) -> PlannedItem:
    """An item resolved, with its windows (boundaries in its audio's pauses); the fingerprint comes later."""
    item = resolve_item(item, run_seed, facts := facts if facts is not None else MediaFacts())
    assert item.num_frames is not None, "resolve_item fills it"
    return PlannedItem(item, "", windows=item_windows(item, item.num_frames, facts).windows)


def plan(manifest: Manifest, bundle_identity: dict | None = None, facts: MediaFacts | None = None) -> list[PlannedItem]:
    """Resolve every entry of a *validated* manifest; its media are read once per distinct file, into ``facts``
    (what validation learnt of them is reused)."""
    facts = facts if facts is not None else MediaFacts()
    items = deque(Item.model_validate(merged(manifest.defaults, e.data)) for e in manifest.entries)
    facts.gather(items, remote_audio=True)
    tick = Ticker("planning: items planned", len(items))
    planned = []
    while items:  # each item let go once resolved: a big plan never holds its items twice
        tick(len(planned))
        planned.append(planned_item(items.popleft(), manifest.run_seed, facts))
    return refresh_fingerprints(planned, bundle_identity, facts)


def refresh_fingerprints(
    planned: list[PlannedItem], bundle_identity: dict | None, facts: MediaFacts | None = None
) -> list[PlannedItem]:
    """Recompute fingerprints from the inputs as they are now: a changed file or model re-renders its items."""
    facts = facts if facts is not None else MediaFacts()
    out = []
    for p in planned:
        values = p.item.values
        media: dict[str, object] = {
            name: facts.identity(uri) if uri is not None else None for name, uri in media_paths(values)
        }
        if values["loras"]:
            media["loras"] = [facts.identity(lora["path"]) for lora in values["loras"]]
        out.append(replace(p, fingerprint=fingerprint(values, media, bundle_identity)))
    return out


PLAN_SCHEMA = arrow_schema(
    (
        pa.field("fingerprint", pa.string()),
        pa.field("promoted_from", PROMOTED_FROM),
        pa.field("windows", pa.list_(WINDOW_STRUCT)),
    )
)


def plan_table(planned: list[PlannedItem]) -> pa.Table:
    rows = [
        {**p.item.values, "fingerprint": p.fingerprint, "promoted_from": p.promoted_from, "windows": to_rows(p.windows)}
        for p in planned
    ]
    return pa.Table.from_pylist(rows, schema=PLAN_SCHEMA)


def plan_from_table(table: pa.Table, recorded: dict | None = None) -> list[PlannedItem]:
    """The plan as stored. A column the stored plan lacks (it predates that setting) gets the run's ``recorded``
    value for it (run.json), else ``HASHED_WHEN_SET``'s."""
    added = {k: (recorded or {}).get(k, v) for k, v in HASHED_WHEN_SET.items() if k not in table.column_names}
    out = []
    for row in table.to_pylist():
        row = {**added, **row}
        fp, promoted_from = row.pop("fingerprint"), row.pop("promoted_from", None)  # plans before promotion lack it
        windows = from_rows(row.pop("windows", None))  # plans before windows lack it
        row["tags"] = dict(row["tags"] or [])
        row["loras"] = row.get("loras") or []  # plans written before LoRAs have no such column
        out.append(PlannedItem(Item.model_validate(row), fp, promoted_from, windows=windows))
    return out
