"""Validation: every problem of a manifest in one pass, before anything renders.

Each problem names the item (id, and line or row) and the field, in a sentence meant for the person
who wrote the manifest. Warnings (legal but rarely meant: a video far longer than its audio, settings that
drafts set but do not use) are printed too but fail nothing. When the run's model is known (the manifest's
``model:`` section, or ``--bundle``), values are checked against the checkpoint's header as well.
``python -m manifests.validate MANIFEST`` prints the report and exits 1 on errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ltxcore.bundle import ModelBundle
from ltxcore.checkpoint_header import transformer_layer_count
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.image_files import image_problem
from ltxcore.media import probe_audio
from ltxcore.request import pipeline_problem
from ltxcore.token_bound import MAX_TOKENS, MAX_TOKENS_HELP
from manifests.clip_checks import audio_seconds, clip_frames, size_problems, window_warnings
from manifests.item import (
    GUIDER_FIELDS,
    GUIDER_PREFIX,
    GUIDER_SECTION,
    KINDS,
    Item,
    check_item,
    media_paths,
    merged,
    unknown_field,
)
from manifests.load import Entry, Manifest, ManifestError, load_manifest
from manifests.lora_files import LoraFiles
from manifests.model_section import MODEL_KEYS, model_paths, open_bundle
from manifests.windows import describe, item_windows
from storage.fs import StorageError, exists, is_uri, local_or_uri


@dataclass(frozen=True)
class Problem:
    where: str  # "item 'x' (line 3)", "model", "defaults", "manifest"
    field: str
    message: str
    entry: int | None = dataclasses.field(default=None, compare=False)  # index of the item's entry, for item problems
    # indexes of the entries a problem named once for several items is about (a misspelt column)
    entries: tuple[int, ...] = dataclasses.field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.where}, field {self.field!r}: {self.message}" if self.field else f"{self.where}: {self.message}"


def _media_problems(item: Item) -> list[tuple[str, str]]:
    """Remote media must exist; local audio must decode, local images must decode and be large enough at
    their CRF (``ltxcore.image_files``). A missing local file is the request checks' to report."""
    out = []
    crfs = {name: image.crf for name, image in item.to_request().conditioning_images()}
    for name, value in media_paths(item.values):
        if value is None or (not is_uri(value) and not Path(value).is_file()):
            continue  # absent, or reported as missing by the request's checks
        if is_uri(value):
            try:
                if not exists(value):
                    out.append((name, f"{value} does not exist."))
            except (StorageError, OSError) as e:
                out.append((name, f"{value} cannot be read: {e}"))
        elif name == "audio":
            try:
                probe_audio(value)
            except RenderInputError as e:
                out.append(("audio", e.message))
        elif problem := image_problem(value, crfs[name.removesuffix(".path")]):
            out.append((name, problem))
    return out


UNKNOWN = "is not a known field."  # the start of ``unknown_field``'s message
DRAFT_UNUSED = (*GUIDER_FIELDS, "num_inference_steps")  # a distilled item runs 8 fixed steps without guidance


def _unused_by(drafts: str) -> str:
    return (
        f"does not apply to {drafts} (8 fixed steps, no guidance): drafts render without it, and it applies "
        "again when they are promoted to two-stage."
    )


def check_entry(
    entry: Entry,
    defaults: dict,
    num_layers: int | None,
    max_tokens: int = MAX_TOKENS,
    transformer: str = "dev",
    loras: LoraFiles | None = None,
) -> tuple[list[Problem], list[Problem]]:
    """Problems and warnings of one entry after defaults apply: fields, types, ranges, size, media, the
    pipeline's model and LoRA files."""
    if "_not_a_mapping" in entry.data:
        return [Problem(entry.label, "", "must be a mapping of fields (id, audio, prompt, ...).", entry.index)], []
    item, problems = check_item(defaults, entry.data)
    found = list(problems)
    reported = {name.split("[")[0] for name, _ in problems}
    if item is None:  # the rest of the item is still checked, all at once, without the fields already reported
        item, _ = check_item(_without(defaults, reported), _without(entry.data, reported))
    if item is None:  # a required field is missing or unusable: nothing else can be known
        return [Problem(entry.label, name, message, entry.index) for name, message in found], []
    seconds = audio_seconds(item)
    known = {"seed": item.seed if item.seed is not None else 0, "num_frames": clip_frames(item, seconds)}
    request = item.model_copy(update=known).to_request()
    for error in request.problems() + (request.guider.model_problems(num_layers) if num_layers else []):
        name = error.field if error.field.split("[")[0] in KINDS else GUIDER_PREFIX + error.field
        found.append((name, error.message))
    if not {"height", "width", "num_frames"} & {name for name, _ in found}:
        found += size_problems(item, seconds, max_tokens)
    found += _media_problems(item)
    if problem := pipeline_problem(item.pipeline, transformer):
        found.append(("pipeline", problem))
    if loras is not None:
        found += [("loras", message) for lora in item.loras for message in loras.problems(lora.path)]
    warnings = [Problem(entry.label, name, message, entry.index) for name, message in window_warnings(item, seconds)]
    found = problems + [(name, text) for name, text in found[len(problems) :] if name.split("[")[0] not in reported]
    return [Problem(entry.label, name, message, entry.index) for name, message in found], warnings


def _without(values: dict, names: set[str]) -> dict:
    return {k: v for k, v in values.items() if k not in names}


def check_model(manifest: Manifest) -> tuple[list[Problem], ModelBundle | None]:
    """Model-section problems, and the bundle when it is local (its headers are then checked too)."""
    model = manifest.model
    out = [Problem("model", k, unknown_field(k, list(MODEL_KEYS))) for k in model if k not in MODEL_KEYS]
    if not model:
        return out, None
    try:
        paths = model_paths(model)
        if any(is_uri(p) for p in paths.values()):
            absent = [p for role, p in paths.items() if role != "gemma_root" and not exists(p)]
            return out + [Problem("model", "", f"{p} does not exist.") for p in absent], None
        bundle = open_bundle(model)
    except (BundleError, StorageError, TypeError) as e:
        return [*out, Problem("model", "", str(e))], None
    return out, bundle


def enhance_problems(manifest: Manifest) -> list[Problem]:
    """``enhance_prompt`` items of a run whose local Gemma root cannot generate text, one problem each."""
    entries = [e for e in manifest.entries if isinstance(e.data, dict) and _enhances(manifest.defaults, e.data)]
    if not entries or not manifest.model:
        return []
    try:
        gemma_root = model_paths(manifest.model)["gemma_root"]
    except BundleError:
        return []  # reported for the model section
    if is_uri(gemma_root) or not Path(gemma_root).is_dir():
        return []  # a remote bundle is checked by the workers that fetch it
    from ltxcore.enhance import generation_problem  # transformers: only when an item asks for enhancement

    problem = generation_problem(gemma_root)
    if problem is None:
        return []
    message = f"needs the model's Gemma to generate text, and gemma_root {gemma_root} cannot: {problem}."
    return [Problem(e.label, "enhance_prompt", message) for e in entries]


def _enhances(defaults: dict, entry: dict) -> bool:
    return {**defaults, **entry}.get("enhance_prompt") is True


def validate(manifest: Manifest, max_tokens: int = MAX_TOKENS, transformer: str = "dev") -> list[Problem]:
    """Every problem of ``manifest`` for workers holding ``transformer`` (see ``check`` for its warnings too)."""
    return check(manifest, max_tokens, transformer)[0]


def check(
    manifest: Manifest, max_tokens: int = MAX_TOKENS, transformer: str = "dev"
) -> tuple[list[Problem], list[Problem]]:
    """Every problem and every warning of ``manifest``, each in manifest order."""
    problems, warnings = [Problem("manifest", "", p) for p in manifest.top_level_problems], draft_warnings(manifest)
    model_problems, bundle = check_model(manifest)
    num_layers = transformer_layer_count(bundle.checkpoint_path) if bundle else None
    loras = LoraFiles(bundle.checkpoint_path if bundle else None)
    problems += model_problems + enhance_problems(manifest)
    for name in manifest.defaults:
        if name not in KINDS:
            problems.append(Problem("defaults", name, unknown_field(name, [*KINDS, GUIDER_SECTION])))
    seen: dict[str, Entry] = {}
    for entry in manifest.entries:
        entry_problems, entry_warnings = check_entry(
            entry, manifest.defaults, num_layers, max_tokens, transformer, loras
        )
        problems += entry_problems
        warnings += entry_warnings
        item_id = entry.data.get("id")
        if isinstance(item_id, str):
            if item_id in seen:
                problems.append(Problem(entry.label, "id", f"duplicates the id of {seen[item_id].label}.", entry.index))
            else:
                seen[item_id] = entry
    if not manifest.entries:
        problems.append(Problem("manifest", "items", "is empty; add at least one item."))
    return _unknown_once(problems, manifest), extra_column_warnings(manifest) + warnings


def extra_column_warnings(manifest: Manifest) -> list[Problem]:
    """One warning naming the manifest's extra columns (kept as tags), or none."""
    names = manifest.extra_columns
    if not names:
        return []
    shown = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
    if len(names) == 1:
        return [Problem("manifest", "", f"column {shown} is not an item field: kept as a tag.")]
    return [Problem("manifest", "", f"columns {shown} are not item fields: kept as tags.")]


MAX_NAMED = 10  # columns, lines or rows a message names before "and N more"


def _unknown_once(problems: list[Problem], manifest: Manifest) -> list[Problem]:
    """Item problems about the same unknown field (a misspelt column: ``promt`` on every row) as one problem,
    where the first was, naming every item's line or row."""
    groups: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        if p.entry is not None and p.message.startswith(UNKNOWN):
            groups.setdefault((p.field, p.message), []).append(p)
    if not groups:
        return problems
    where = {e.index: e.where for e in manifest.entries}
    out = []
    for p in problems:
        group = groups.get((p.field, p.message))
        if group is None or p.entry is None:
            out.append(p)
        elif group[0] is p:
            indexes = tuple(q.entry for q in group if q.entry is not None)
            label = p.where if len(group) == 1 else f"{len(group)} items ({_places([where[i] for i in indexes])})"
            out.append(Problem(label, p.field, p.message, p.entry if len(group) == 1 else None, indexes))
    return out


def _places(wheres: list[str]) -> str:
    """``rows 1-3, 7`` or ``lines 2, 5, 9``: where several items are, the first ``MAX_NAMED`` runs of them."""
    kind = wheres[0].split()[0]
    if not all(w.split()[0] == kind and w.split()[-1].isdigit() for w in wheres):
        return ", ".join(wheres[:MAX_NAMED]) + (
            f" and {len(wheres) - MAX_NAMED} more" if len(wheres) > MAX_NAMED else ""
        )
    numbers = [int(w.split()[-1]) for w in wheres]
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1 and kind == "row":
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:MAX_NAMED]]
    more = f" and {len(runs) - MAX_NAMED} more" if len(runs) > MAX_NAMED else ""
    return f"{kind}s {', '.join(text)}{more}"


def draft_warnings(manifest: Manifest) -> list[Problem]:
    """Settings that distilled items (drafts) set but do not use: warnings, not errors, since promotion
    renders the same items two-stage, where they apply. Set in the defaults, they are named once."""
    out, drafts = [], 0
    for entry in manifest.entries:
        if merged(manifest.defaults, entry.data).get("pipeline") == "distilled":
            drafts += 1
            out += [
                Problem(entry.label, name, _unused_by("pipeline distilled"))
                for name in DRAFT_UNUSED
                if name in entry.data
            ]
    note = _unused_by(f"the {drafts} distilled item(s)")
    return [Problem("defaults", name, note) for name in DRAFT_UNUSED if drafts and name in manifest.defaults] + out


def report(problems: list[Problem], manifest: Manifest, warnings: Sequence[Problem] = ()) -> str:
    if not problems:
        lines = [f"{manifest.path}: {len(manifest.entries)} items, no problems."]
    else:
        lines = [f"{manifest.path}: {len(problems)} problem(s) in {len(manifest.entries)} items:"]
        lines += [f"  - {p}" for p in problems]
    return "\n".join(lines + warning_lines(warnings))


def warning_lines(warnings: Sequence[Problem]) -> list[str]:
    return [f"{len(warnings)} warning(s), not errors:", *(f"  - {w}" for w in warnings)] if warnings else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a render manifest and list every problem at once.")
    parser.add_argument("manifest", help="a .yaml or .parquet manifest")
    parser.add_argument("--defaults", help="YAML with model/defaults for a Parquet manifest")
    add_model_check_options(parser)
    args = parser.parse_args(argv)
    return validate_file(args.manifest, args.defaults, args.bundle, args.max_tokens)


def validate_file(path: str, defaults: str | None, bundle: str | None, max_tokens: int | None) -> int:
    """Print every problem of the manifest at ``path`` (against ``bundle``, when given); 1 if there is any."""
    try:
        manifest = load_manifest(path, defaults)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if bundle:
        manifest = replace(manifest, model={"bundle": local_or_uri(bundle)})
    problems, warnings = check(manifest, max_tokens or MAX_TOKENS)
    print(report(problems, manifest, warnings))
    if not problems:
        print("\n".join(window_lines(manifest)))
    return 1 if problems else 0


def window_lines(manifest: Manifest) -> list[str]:
    """Each item's windows and estimated GPU time, for a manifest without problems (local audio only: a remote
    file is searched for pauses when the run is planned)."""
    lines = []
    for entry in manifest.entries:
        item = Item.model_validate(merged(manifest.defaults, entry.data))
        frames = clip_frames(item, audio_seconds(item))
        if frames is None:
            lines.append(f"{item.id}: windows are planned when the run starts (remote audio)")
            continue
        lines += describe(item, item_windows(item, frames, item.audio))
    return ["windows (GPU seconds estimated for one H200):", *lines] if lines else []


def add_model_check_options(parser: argparse.ArgumentParser) -> None:
    """``--bundle`` and ``--max-tokens`` of ``validate`` (render defines its own, the same)."""
    parser.add_argument("--bundle", help="check against this model folder (its checkpoint's header only)")
    parser.add_argument("--max-tokens", type=int, help=MAX_TOKENS_HELP)


if __name__ == "__main__":
    sys.exit(main())
