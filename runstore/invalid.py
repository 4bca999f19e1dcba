"""Tolerant runs (``--skip-invalid``): the items that fail validation are set aside instead of stopping the
batch. Each gets a ``failed`` result row (``error_type`` ``InvalidInput``) with the message ``validate``
prints, and every valid item renders.

The set-aside entries are kept as written, with the manifest's defaults and run seed, in ``RUN/invalid.json``,
so ``--resume`` validates them again: one whose inputs were fixed joins the plan and renders, one still broken
gets a fresh row. Problems of the manifest as a whole (its model, its defaults) still stop the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from manifests.item import KINDS, Item, id_problem, merged
from manifests.load import Entry, Manifest
from manifests.problems import Problem
from runstore.plan import planned_item, refresh_fingerprints
from runstore.results import INVALID_INPUT, write_invalid_rows
from runstore.run_folder import RunFolder


@dataclass(frozen=True)
class SetAside:
    """An invalid entry. ``item_id`` names its rows: its own id, or ``<item N, line L>`` when that id is missing,
    unusable or taken by an earlier entry (a form no valid id can take, so rows never mix with another item's)."""

    item_id: str
    entry: Entry
    duplicate_of: str | None = None  # the label of the earlier entry with the same id


@dataclass(frozen=True)
class InvalidItems:
    run_seed: int
    defaults: dict
    items: tuple[SetAside, ...]

    def to_json(self) -> bytes:
        items = [
            {"item_id": s.item_id, "index": s.entry.index, "where": s.entry.where, "data": s.entry.data}
            | ({"duplicate_of": s.duplicate_of} if s.duplicate_of else {})
            for s in self.items
        ]
        record = {"run_seed": self.run_seed, "defaults": self.defaults, "items": items}
        return json.dumps(record, indent=1, default=str).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> InvalidItems:
        record = json.loads(raw)
        items = tuple(
            SetAside(i["item_id"], Entry(i["index"], i["where"], i["data"]), i.get("duplicate_of"))
            for i in record["items"]
        )
        return cls(record["run_seed"], record["defaults"], items)


def save(run: RunFolder, invalid: InvalidItems) -> None:
    run.write_file(run.invalid_uri, invalid.to_json())


def load(run: RunFolder) -> InvalidItems | None:
    """The run's set-aside items; None for a run without any (every run not started with --skip-invalid)."""
    raw = run.read_file(run.invalid_uri)
    return None if raw is None else InvalidItems.from_json(raw)


def set_aside(manifest: Manifest, problems: list[Problem]) -> tuple[Manifest, InvalidItems, list[Problem]]:
    """The manifest without its invalid entries, those entries, and the problems that are not an item's."""
    bad = {p.entry for p in problems if p.entry is not None} | {i for p in problems for i in p.entries}
    first: dict[str, Entry] = {}
    items = []
    for entry in manifest.entries:
        item_id = entry.data.get("id")
        earlier = first.setdefault(item_id, entry) if isinstance(item_id, str) else None
        if entry.index not in bad:
            continue
        duplicate_of = earlier.label if earlier is not None and earlier is not entry else None
        usable = isinstance(item_id, str) and id_problem(item_id) is None and duplicate_of is None
        name = item_id if usable and isinstance(item_id, str) else f"<item {entry.index + 1}, {entry.where}>"
        items.append(SetAside(name, entry, duplicate_of))
    valid = replace(manifest, entries=[e for e in manifest.entries if e.index not in bad])
    rest = [p for p in problems if p.entry is None and not p.entries]
    return valid, InvalidItems(manifest.run_seed, manifest.defaults, tuple(items)), rest


def settle(
    run: RunFolder,
    run_id: str,
    session: str,
    bundle_identity: dict | None,
    num_layers: int | None,
    max_tokens: int,
) -> tuple[int, int]:
    """Validate the run's set-aside items again: fixed ones join the plan (then ``invalid.json`` drops them),
    the others get a fresh InvalidInput row. Returns (fixed, still invalid)."""
    from manifests.validate import check_entry  # here: reading a run needs no validation

    invalid = load(run)
    if invalid is None or not invalid.items:
        return 0, 0
    planned = run.plan()
    taken = {p.id for p in planned}
    fixed, broken, rows = [], [], []
    for s in invalid.items:
        if s.item_id in taken:  # joined the plan in a session that stopped before rewriting invalid.json
            continue
        problems, _ = check_entry(s.entry, invalid.defaults, num_layers, max_tokens)
        if s.duplicate_of:
            problems.append(Problem(s.entry.label, "id", f"duplicates the id of {s.duplicate_of}."))
        if problems:
            broken.append(s)
            rows.append(invalid_row(s, invalid.defaults, "\n".join(str(p) for p in problems)))
        else:
            item = Item.model_validate(merged(invalid.defaults, s.entry.data))
            fixed.append(planned_item(item, invalid.run_seed))
    if fixed:
        run.record_plan(planned + refresh_fingerprints(fixed, bundle_identity))
    save(run, replace(invalid, items=tuple(broken)))
    write_invalid_rows(run.results_uri, run_id, session, rows)
    return len(fixed), len(broken)


_ADAPTERS = {name: TypeAdapter(info.rebuild_annotation()) for name, info in Item.model_fields.items()}


def parsed_fields(values: dict) -> dict:
    """The fields of an invalid entry that parse alone and fit their Arrow column; the rest stay empty."""
    out = {}
    for name, value in values.items():
        if name == "id" or name not in KINDS:
            continue
        try:
            value = _ADAPTERS[name].validate_python(value)
            value = list(value.items()) if isinstance(value, dict) else value
            pa.array([value], type=KINDS[name].arrow)
        except (ValidationError, pa.ArrowException, TypeError, ValueError, OverflowError):
            continue
        out[name] = value
    return out


def invalid_row(s: SetAside, defaults: dict, message: str) -> dict:
    """The ``failed`` row of a set-aside item: what of it parses, and the message ``validate`` prints."""
    return {
        "item_id": s.item_id,
        **parsed_fields(merged(defaults, s.entry.data)),
        "status": "failed",
        "error_type": INVALID_INPUT,
        "error_message": message,
        "finished_at": datetime.now(UTC),
        "host": "driver",
    }
