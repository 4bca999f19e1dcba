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

from ltxcore.bundle import ModelBundle
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.media import probe_audio
from manifests.item import GUIDER_PREFIX, GUIDER_SECTION, KINDS, MEDIA_FIELDS, Item, check_item, unknown_field
from manifests.load import Entry, Manifest, ManifestError, load_manifest
from manifests.lora_files import LoraFiles
from manifests.model_section import MODEL_KEYS, model_paths, open_bundle
from manifests.storage import StorageError, exists, is_uri


@dataclass(frozen=True)
class Problem:
    where: str  # "item 'x' (line 3)", "model", "defaults", "manifest"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}, field {self.field!r}: {self.message}" if self.field else f"{self.where}: {self.message}"


def _media_problems(item: Item) -> list[tuple[str, str]]:
    """Remote media must exist; local media must decode (audio) or open (image)."""
    out = []
    for name in MEDIA_FIELDS:
        value = getattr(item, name)
        if not is_uri(value):
            continue
        try:
            if not exists(value):
                out.append((name, f"{value} does not exist."))
        except (StorageError, OSError) as e:
            out.append((name, f"{value} cannot be read: {e}"))
    audio, image = item.audio, item.image
    if isinstance(audio, str) and not is_uri(audio) and Path(audio).is_file():
        try:
            probe_audio(audio)
        except RenderInputError as e:
            out.append(("audio", e.message))
    if isinstance(image, str) and not is_uri(image) and Path(image).is_file():
        try:
            with Image.open(image) as im:
                im.verify()
        except Exception as e:  # PIL raises many types for a bad image
            out.append(("image", f"{image} is not a readable image: {e}."))
    return out


def check_entry(entry: Entry, defaults: dict, num_layers: int | None, loras: LoraFiles | None = None) -> list[Problem]:
    """Problems of one entry after defaults apply: fields, types, ranges, media, LoRA files."""
    if "_not_a_mapping" in entry.data:
        return [Problem(entry.label, "", "must be a mapping of fields (id, audio, prompt, ...).")]
    item, problems = check_item(defaults, entry.data)
    out = [Problem(entry.label, name, message) for name, message in problems]
    if item is None:
        return out
    request = item.model_copy(update={"seed": item.seed if item.seed is not None else 0}).to_request()
    for error in request.problems(num_layers):
        name = error.field if error.field in KINDS else GUIDER_PREFIX + error.field
        out.append(Problem(entry.label, name, error.message))
    out += [Problem(entry.label, name, message) for name, message in _media_problems(item)]
    if loras is not None:
        out += [Problem(entry.label, "loras", message) for lora in item.loras for message in loras.problems(lora.path)]
    return out


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


def validate(manifest: Manifest) -> list[Problem]:
    problems = [Problem("manifest", "", p) for p in manifest.top_level_problems]
    model_problems, bundle = check_model(manifest)
    problems += model_problems
    num_layers = bundle.checkpoint_config().get("transformer", {}).get("num_layers") if bundle else None
    loras = LoraFiles(bundle.checkpoint_path if bundle else None)
    for name in manifest.defaults:
        if name not in KINDS:
            problems.append(Problem("defaults", name, unknown_field(name, [*KINDS, GUIDER_SECTION])))
    seen: dict[str, Entry] = {}
    for entry in manifest.entries:
        problems += check_entry(entry, manifest.defaults, num_layers, loras)
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
