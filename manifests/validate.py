"""Validation: every problem of a manifest in one pass, before anything renders.

Each problem names the item (id, and line or row) and the field, in a sentence meant for the person
who wrote the manifest. Warnings (legal but rarely meant: a video far longer than its audio, settings that
drafts set but do not use) are printed too but fail nothing. When the run's model is known (the manifest's
``model:`` section, or ``--bundle``), values are checked against the checkpoint's header as well.
``ltx-batch validate MANIFEST`` (with render's model and item options) prints the report and exits 1 on errors.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ltxcore.bundle import ModelBundle
from ltxcore.checkpoint_header import transformer_layer_count
from ltxcore.errors import BundleError
from ltxcore.request import pipeline_problem
from ltxcore.token_bound import MAX_TOKENS
from ltxcore.windows import Window
from manifests.clip_checks import clip_frames, size_problems, window_warnings
from manifests.item import GUIDER_FIELDS, GUIDER_PREFIX, GUIDER_SECTION, KINDS, Item, media_paths, merged
from manifests.item_checks import check_item, unknown_field
from manifests.load import Entry, Manifest, ManifestError, ManifestSource
from manifests.lora_files import LoraFiles
from manifests.media_facts import MediaFacts
from manifests.model_section import MODEL_KEYS, model_paths, open_bundle
from manifests.problems import MAX_NAMED, Problem, named_once, problem_lines, warning_lines
from manifests.ticker import Ticker
from manifests.windows import describe, item_windows, plan_total
from storage.fs import StorageError, exists, is_uri


def _media_problems(item: Item, facts: MediaFacts) -> list[tuple[str, str]]:
    """Remote media must exist; local audio must decode, local images must decode and be large enough at
    their CRF (``ltxcore.image_files``). A missing local file is the request checks' to report."""
    out = []
    crfs = {name: image.crf for name, image in item.to_request().conditioning_images()}
    for name, value in media_paths(item.values):
        if value is None or (not is_uri(value) and not Path(value).is_file()):
            continue  # absent, or reported as missing by the request's checks
        if is_uri(value):
            problem = facts.remote_problem(value)
        elif name == "audio":
            problem = facts.audio(value).problem
        else:
            problem = facts.image_problem(value, crfs[name.removesuffix(".path")])
        if problem:
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
    facts: MediaFacts | None = None,
) -> tuple[list[Problem], list[Problem]]:
    """Problems and warnings of one entry after defaults apply: fields, types, ranges, size, media, the
    pipeline's model and LoRA files."""
    settings = EntryChecks(defaults, num_layers, max_tokens, transformer, loras, facts or MediaFacts())
    return settings.check(entry, made_item(entry, defaults))


def made_item(entry: Entry, defaults: dict) -> tuple[Item | None, list[tuple[str, str]]] | None:
    """``check_item`` of an entry; None when the entry is no mapping."""
    return None if "_not_a_mapping" in entry.data else check_item(defaults, entry.data)


@dataclass(frozen=True)
class EntryChecks:
    """What every entry of a manifest is checked against."""

    defaults: dict
    num_layers: int | None
    max_tokens: int
    transformer: str
    loras: LoraFiles | None
    facts: MediaFacts

    def check(
        self, entry: Entry, made: tuple[Item | None, list[tuple[str, str]]] | None
    ) -> tuple[list[Problem], list[Problem]]:
        """Problems and warnings of ``entry``, whose ``made_item`` is ``made``."""
        if made is None:
            return [Problem(entry.label, "", "must be a mapping of fields (id, audio, prompt, ...).", entry.index)], []
        item, problems = made
        found = list(problems)
        reported = {name.split("[")[0] for name, _ in problems}
        if item is None:  # the rest of the item is still checked, all at once, without the fields already reported
            item, _ = check_item(_without(self.defaults, reported), _without(entry.data, reported))
        if item is None:  # a required field is missing or unusable: nothing else can be known
            return [Problem(entry.label, name, message, entry.index) for name, message in found], []
        seconds = self.facts.local_audio_seconds(item.audio)
        known = {"seed": item.seed if item.seed is not None else 0, "num_frames": clip_frames(item, seconds)}
        request = item.model_copy(update=known).to_request()
        num_layers = self.num_layers
        for error in request.problems() + (request.guider.model_problems(num_layers) if num_layers else []):
            name = error.field if error.field.split("[")[0] in KINDS else GUIDER_PREFIX + error.field
            found.append((name, error.message))
        if not {"height", "width", "num_frames"} & {name for name, _ in found}:
            found += size_problems(item, seconds, self.max_tokens)
        found += _media_problems(item, self.facts)
        if problem := pipeline_problem(item.pipeline, self.transformer):
            found.append(("pipeline", problem))
        if self.loras is not None:
            found += [("loras", message) for lora in item.loras for message in self.loras.problems(lora.path)]
        warnings = [Problem(entry.label, n, message, entry.index) for n, message in window_warnings(item, seconds)]
        found = problems + [(n, text) for n, text in found[len(problems) :] if n.split("[")[0] not in reported]
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
    manifest: Manifest, max_tokens: int = MAX_TOKENS, transformer: str = "dev", facts: MediaFacts | None = None
) -> tuple[list[Problem], list[Problem]]:
    """Every problem and every warning of ``manifest``, each in manifest order. Its media are looked at once per
    distinct file, into ``facts`` (which planning then reads)."""
    facts = facts if facts is not None else MediaFacts()
    problems, warnings = [Problem("manifest", "", p) for p in manifest.top_level_problems], draft_warnings(manifest)
    model_problems, bundle = check_model(manifest)
    num_layers = transformer_layer_count(bundle.checkpoint_path) if bundle else None
    loras = LoraFiles(bundle.checkpoint_path if bundle else None)
    problems += model_problems + enhance_problems(manifest)
    for name in manifest.defaults:
        if name not in KINDS:
            problems.append(Problem("defaults", name, unknown_field(name, [*KINDS, GUIDER_SECTION])))
    made = [made_item(entry, manifest.defaults) for entry in manifest.entries]
    facts.gather(m[0] for m in made if m is not None and m[0] is not None)
    checks = EntryChecks(manifest.defaults, num_layers, max_tokens, transformer, loras, facts)
    seen: dict[str, Entry] = {}
    tick = Ticker("validating: items checked", len(made))
    for done, (entry, entry_made) in enumerate(zip(manifest.entries, made, strict=True)):
        tick(done)
        entry_problems, entry_warnings = checks.check(entry, entry_made)
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
    return _unknown_once(problems), extra_column_warnings(manifest) + warnings


def extra_column_warnings(manifest: Manifest) -> list[Problem]:
    """One warning naming the manifest's extra columns (kept as tags), or none."""
    names = manifest.extra_columns
    if not names:
        return []
    shown = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
    if len(names) == 1:
        return [Problem("manifest", "", f"column {shown} is not an item field: kept as a tag.")]
    return [Problem("manifest", "", f"columns {shown} are not item fields: kept as tags.")]


def _unknown_once(problems: list[Problem]) -> list[Problem]:
    """Item problems about the same unknown field (a misspelt column: ``promt`` on every row) as one problem,
    where the first was, naming every item's line or row."""
    return named_once(problems, lambda p: (p.field, p.message) if p.message.startswith(UNKNOWN) else None)


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


def report(problems: list[Problem], manifest: Manifest, warnings: Sequence[Problem] = (), verbose: bool = False) -> str:
    """What ``validate`` says of a manifest, sized for a person unless ``verbose`` (``manifests.problems``)."""
    name = manifest.source or manifest.path  # as given: an s3:// URI, not the copy read
    hint = f"every one, one per line: ltx-batch validate {name} --verbose"
    if not problems:
        lines = [f"{name}: {len(manifest.entries)} items, no problems."]
    else:
        header = f"{name}: {len(problems)} problem(s) in {len(manifest.entries)} items:"
        lines = problem_lines(header, problems, verbose, hint)
    return "\n".join(lines + warning_lines(warnings, verbose, hint))


def validate_source(source: ManifestSource, max_tokens: int | None, verbose: bool = False) -> int:
    """Print the problems of the manifest ``source`` reads (with its overrides and model, as a render of the
    same options reads it), or its plan; 1 if there is any problem."""
    try:
        manifest = source.read()
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    facts = MediaFacts()
    problems, warnings = check(manifest, max_tokens or MAX_TOKENS, source.model.transformer or "dev", facts)
    print(report(problems, manifest, warnings, verbose))
    if not problems:
        print("\n".join(plan_lines(manifest, facts, verbose)))
    return 1 if problems else 0


MAX_PLAN_LINES = 30  # item lines of the plan shown without --verbose


def plan_lines(manifest: Manifest, facts: MediaFacts | None = None, verbose: bool = False) -> list[str]:
    """The plan of a manifest without problems: its totals (items, video, windows, estimated GPU-hours), then
    each item's windows (``manifests.windows.describe``) when they fit in ``MAX_PLAN_LINES`` or with ``verbose``,
    else the items that render as several windows, one line each. Local audio only: a remote file is searched
    for pauses when the run is planned."""
    facts = facts if facts is not None else MediaFacts()
    described: list[list[str]] = []
    planned: list[tuple[Item, tuple[Window, ...]]] = []
    for entry in manifest.entries:
        item = Item.model_validate(merged(manifest.defaults, entry.data))
        frames = clip_frames(item, facts.local_audio_seconds(item.audio))
        if frames is not None:
            found = item_windows(item, frames, facts)
            planned.append((item, found.windows))
            described.append(describe(item, found))
    lines = [f"plan: {plan_total(planned)} (estimated)"]
    if remote := len(manifest.entries) - len(planned):
        lines.append(f"  {remote} item(s) with remote audio: their windows are planned when the run starts")
    every = [line for item_lines in described for line in item_lines]
    if verbose or len(every) <= MAX_PLAN_LINES:
        return lines + every
    several = [item_lines[0] for item_lines in described if len(item_lines) > 1]
    lines += several[:MAX_PLAN_LINES]
    left = len(described) - len(several[:MAX_PLAN_LINES])
    return [*lines, f"  and {left} more item(s); each item's windows: --verbose"]
