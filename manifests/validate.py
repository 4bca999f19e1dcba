"""Validation: every problem of a manifest in one pass, before anything renders.

Each problem names the item (id, and line or row) and the field, in a sentence meant for the person
who wrote the manifest. ``python -m manifests.validate MANIFEST`` prints the report and exits 1 on errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ltxcore.errors import BundleError, RenderInputError
from ltxcore.media import probe_audio
from ltxcore.request import frames_for_duration
from manifests.item import GUIDER_PREFIX, GUIDER_SECTION, KINDS, Item, check_item, media_paths, unknown_field
from manifests.load import Entry, Manifest, ManifestError, load_manifest
from manifests.model_section import MODEL_KEYS, model_paths, open_bundle
from manifests.storage import StorageError, exists, is_uri


@dataclass(frozen=True)
class Problem:
    where: str  # "item 'x' (line 3)", "model", "defaults", "manifest"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}, field {self.field!r}: {self.message}" if self.field else f"{self.where}: {self.message}"


def image_problem(path: str) -> str | None:
    """Why the image at ``path`` cannot condition a clip, or None: it must decode whole, in colour (upstream
    takes the first three channels of the pixels)."""
    try:
        with Image.open(path) as im:
            im.load()
            bands = im.getbands()
    except Exception as e:  # PIL raises many types for a bad image
        return f"{path} is not a readable image: {e}."
    if len(bands) < 3:
        return f"{path} is a {''.join(bands)} image; save it as RGB (PNG or JPEG)."
    return None


def _media_problems(item: Item) -> list[tuple[str, str]]:
    """Remote media must exist; local media must decode (audio) or open in colour (images)."""
    out = []
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
        elif problem := image_problem(value):
            out.append((name, problem))
    return out


def _clip_frames(item: Item) -> int | None:
    """The item's frame count: as set, or the longest clip its local audio gives (None if that is unknown)."""
    if item.num_frames is not None or is_uri(item.audio) or not Path(item.audio).is_file():
        return item.num_frames
    try:
        window = probe_audio(item.audio).duration - item.audio_start_time
    except RenderInputError:
        return None
    if item.audio_max_duration is not None:
        window = min(window, item.audio_max_duration)
    return frames_for_duration(window, item.frame_rate) if window > 0 else None


def check_entry(entry: Entry, defaults: dict, num_layers: int | None) -> list[Problem]:
    """Problems of one entry after defaults apply: fields, types, ranges, media."""
    if "_not_a_mapping" in entry.data:
        return [Problem(entry.label, "", "must be a mapping of fields (id, audio, prompt, ...).")]
    item, problems = check_item(defaults, entry.data)
    out = [Problem(entry.label, name, message) for name, message in problems]
    if item is None:
        return out
    known = {"seed": item.seed if item.seed is not None else 0, "num_frames": _clip_frames(item)}
    request = item.model_copy(update=known).to_request()
    for error in request.problems(num_layers):
        name = error.field if error.field.split("[")[0] in KINDS else GUIDER_PREFIX + error.field
        out.append(Problem(entry.label, name, error.message))
    out += [Problem(entry.label, name, message) for name, message in _media_problems(item)]
    return out


def check_model(manifest: Manifest) -> tuple[list[Problem], int | None]:
    """Model-section problems, and the transformer's block count when the bundle is local."""
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
    return out, bundle.checkpoint_config().get("transformer", {}).get("num_layers")


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


def validate(manifest: Manifest) -> list[Problem]:
    problems = [Problem("manifest", "", p) for p in manifest.top_level_problems]
    model_problems, num_layers = check_model(manifest)
    problems += model_problems + enhance_problems(manifest)
    for name in manifest.defaults:
        if name not in KINDS:
            problems.append(Problem("defaults", name, unknown_field(name, [*KINDS, GUIDER_SECTION])))
    seen: dict[str, Entry] = {}
    for entry in manifest.entries:
        problems += check_entry(entry, manifest.defaults, num_layers)
        item_id = entry.data.get("id")
        if isinstance(item_id, str):
            if item_id in seen:
                problems.append(Problem(entry.label, "id", f"duplicates the id of {seen[item_id].label}."))
            else:
                seen[item_id] = entry
    if not manifest.entries:
        problems.append(Problem("manifest", "items", "is empty; add at least one item."))
    return problems


def report(problems: list[Problem], manifest: Manifest) -> str:
    if not problems:
        return f"{manifest.path}: {len(manifest.entries)} items, no problems."
    lines = [f"{manifest.path}: {len(problems)} problem(s) in {len(manifest.entries)} items:"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a render manifest and list every problem at once.")
    parser.add_argument("manifest", help="a .yaml or .parquet manifest")
    parser.add_argument("--defaults", help="YAML with model/defaults for a Parquet manifest")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.manifest, args.defaults)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    problems = validate(manifest)
    print(report(problems, manifest))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
