"""What changed since a run was submitted, so a resume applies nothing silently.

A resume compares three things with the run's record. The manifest (the one given, else the path recorded at
submission while it is still there) with the plan: items added, removed, and edited (by field). The bundle with
``run.json``'s identity: a file's size and mtime (what fingerprints hash, so what decides a re-render), and the
SHA-256 of its first and last MiB (``DIGEST_BYTES``), recorded at submission. The digest reads 2 MiB of a 22B
checkpoint, not 40 GB: it cannot prove a file unchanged, but it tells "touched, same bytes at both ends" (a copy
without ``-p``, a re-download) from "a different file", which size and mtime alone cannot. And each planned item's
input files (audio, images, LoRAs): a finished item whose fingerprint now (with the submitted bundle) is not
the one its ok row holds.

Then a choice, never a default: ``replan`` (edited and added items render from the new manifest, removed ones
leave the plan, changed files re-render what they touched) or ``keep_plan`` (the plan and its fingerprints as
submitted, with the submitted bundle's identity: finished items stay finished).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from manifests.item import Item, merged
from manifests.load import Manifest, MissingFile, load_manifest, set_overrides
from manifests.model_section import Model
from runstore.plan import PlannedItem, derive_seed
from storage.fs import filesystem

DIGEST_BYTES = 2**20


def file_digest(uri: str) -> str:
    """SHA-256 of the size, the first and the last ``DIGEST_BYTES`` of a file (local or object storage)."""
    fs, path = filesystem(uri)
    with fs.open_input_file(path) as f:
        size = f.size()
        head = f.read_at(min(size, DIGEST_BYTES), 0)
        tail = f.read_at(min(size, DIGEST_BYTES), max(0, size - DIGEST_BYTES))
    return hashlib.sha256(str(size).encode() + head + tail).hexdigest()


def bundle_digests(paths: dict[str, str]) -> dict[str, dict[str, str]]:
    """Role -> file name -> ``file_digest``, for every file of a bundle (run.json keeps it)."""
    from storage.fs import files_under

    return {role: {name: file_digest(uri) for name, uri in files_under(path)} for role, path in paths.items()}


@dataclass(frozen=True)
class Changes:
    manifest: str | None  # the manifest compared, or None when there was none to compare
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    edited: dict[str, tuple[str, ...]] = field(default_factory=dict)  # item id -> the fields that changed
    bundle: tuple[str, ...] = ()  # one line per changed bundle file
    inputs: tuple[str, ...] = ()  # ids of planned items whose input files changed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.edited or self.bundle or self.inputs)

    def lines(self) -> list[str]:
        out = [f"items added in {self.manifest}: {', '.join(self.added)}"] if self.added else []
        out += [f"items removed from {self.manifest}: {', '.join(self.removed)}"] if self.removed else []
        out += [f"item {i!r} edited: {', '.join(fields)}" for i, fields in self.edited.items()]
        out += [f"bundle file {line}" for line in self.bundle]
        out += [f"input files changed (audio, image or LoRA) of: {', '.join(self.inputs)}"] if self.inputs else []
        return out


def _values(manifest: Manifest, data: dict) -> dict | None:
    """An entry as its item's full settings, seed derived as the plan derives it; None if it does not validate."""
    try:
        item = Item.model_validate(merged(manifest.defaults, data))
    except ValidationError:
        return None
    values = item.values
    if values["seed"] is None:
        values["seed"] = derive_seed(manifest.run_seed, item.id)
    return values


def item_changes(planned: list[PlannedItem], manifest: Manifest, set_aside: tuple[str, ...] = ()) -> Changes:
    """The manifest's items against the plan; ``set_aside`` ids (``--skip-invalid``) are known, not added."""
    was = {p.id: p.item.values for p in planned}
    now = {e.data["id"]: e.data for e in manifest.entries if isinstance(e.data.get("id"), str)}
    edited: dict[str, tuple[str, ...]] = {}
    for item_id in was.keys() & now.keys():
        values = _values(manifest, now[item_id])
        if values is None:
            edited[item_id] = ("(no longer valid)",)
            continue
        if now[item_id].get("num_frames") is None and merged(manifest.defaults, {}).get("num_frames") is None:
            values["num_frames"] = was[item_id]["num_frames"]  # derived from the audio, whose fields are compared
        fields = tuple(name for name in values if values[name] != was[item_id].get(name))
        if fields:
            edited[item_id] = fields
    added = tuple(i for i in now if i not in was and i not in set_aside)
    removed = tuple(i for i in was if i not in now)
    return Changes(manifest.source or str(manifest.path), added, removed, dict(sorted(edited.items())))


def bundle_changes(recorded: dict, current: dict, recorded_digests: dict | None, digests: dict) -> tuple[str, ...]:
    """One line per bundle file whose size or mtime differ from the recorded identity (``bundle_identity``)."""
    out = []
    if recorded.get("quantization") != current.get("quantization"):
        out.append(f"quantization: {recorded.get('quantization')} then, {current.get('quantization')} now")
    was_files, now_files = recorded.get("files", {}), current.get("files", {})
    for role in sorted(was_files.keys() | now_files.keys()):
        was = {f["name"]: f for f in was_files.get(role, [])}
        now = {f["name"]: f for f in now_files.get(role, [])}
        for name in sorted(was.keys() | now.keys()):
            before, after = was.get(name), now.get(name)
            if before == after:
                continue
            if before is None or after is None:
                out.append(f"{role}/{name}: {'added' if before is None else 'gone'}")
                continue
            what = "size and mtime" if before["size"] != after["size"] else "mtime"
            then = (recorded_digests or {}).get(role, {}).get(name)
            same = (
                ""
                if then is None
                else (" (first and last MiB the same)" if then == digests[role][name] else " (its bytes differ)")
            )
            out.append(f"{role}/{name}: {what} changed since submission{same}")
    return tuple(out)


def bundle_changes_since(info: dict, model: Model) -> tuple[str, ...]:
    """``bundle_changes`` between run.json (its identity and digests) and ``model`` as this session opened it."""
    recorded_digests = info.get("bundle_digests")
    digests = bundle_digests(model.paths) if recorded_digests else {}
    return bundle_changes(info["bundle"], model.identity, recorded_digests, digests)


def _recorded_items(info: dict) -> tuple[str | None, list[str]]:
    """The run's ``--defaults`` file and ``--set`` pairs, as run.json recorded them."""
    items = info.get("options", {}).get("items")
    if items is not None:
        return items.get("defaults"), list(items.get("overrides") or ())
    args = info.get("args", {})
    return args.get("defaults"), list(args.get("set") or ())


def current_manifest(info: dict, given: str | None) -> tuple[Manifest | None, str | None]:
    """The manifest to compare (the one given, else the submitted path while it is there), or a note why none."""
    path = given or (None if "promoted_from" in info else info.get("manifest"))
    if not path:
        return None, None
    defaults, pairs = _recorded_items(info)
    try:
        return load_manifest(path, defaults, set_overrides(pairs)), None
    except MissingFile as missing:
        if missing.what == "defaults file":
            return None, f"the run's --defaults {defaults} is gone: the items of {path} are not compared"
        if given:
            raise
        return None, f"the submitted manifest {path} is gone: the bundle and input files are compared, not the items"


def input_changes(refreshed: list[PlannedItem], done: set[tuple[str, str]]) -> tuple[str, ...]:
    """Ids of finished items (an ok row) that would render again: no ok row has the fingerprint they get now with
    the submitted bundle (``done``: ``runstore.results.done_fingerprints``), so an audio, image or LoRA changed."""
    finished = {item_id for item_id, _ in done}
    return tuple(p.id for p in refreshed if p.id in finished and (p.id, p.fingerprint) not in done)


def kept(refreshed: list[PlannedItem], done: set[tuple[str, str]]) -> list[PlannedItem]:
    """``--keep-plan``: a finished item keeps the fingerprint of its ok row, so it stays finished."""
    finished = dict(sorted(done))
    out = []
    for p in refreshed:
        stays = (p.id, p.fingerprint) in done or p.id not in finished
        out.append(p if stays else replace(p, fingerprint=finished[p.id]))
    return out


def replanned(planned: list[PlannedItem], changes: Changes, fresh: dict[str, PlannedItem]) -> list[PlannedItem]:
    """The plan after ``--replan``: removed items dropped, edited ones replaced by ``fresh`` (planned from the new
    manifest) in place, added ones appended in the manifest's order."""
    out = [fresh.get(p.id, p) if p.id in changes.edited else p for p in planned if p.id not in changes.removed]
    return out + [fresh[i] for i in changes.added]
