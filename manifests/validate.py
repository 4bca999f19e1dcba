"""Validation: every problem of a manifest in one pass, before anything renders.

Each problem names the item (id, and line or row) and the field, in a sentence meant for the person
who wrote the manifest. ``python -m manifests.validate MANIFEST`` prints the report and exits 1 on errors.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ltxcore.bundle import RELEASED_NAMES, ModelBundle
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.media import probe_audio
from manifests.load import MODEL_KEYS, Entry, Manifest, ManifestError, load_manifest
from manifests.schema import FIELDS, GUIDER_SECTION, REQUIRED, Item, id_problem, merge
from manifests.storage import StorageError, exists, is_uri, join


@dataclass(frozen=True)
class Problem:
    where: str  # "item 'x' (line 3)", "model", "defaults", "manifest"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}, field {self.field!r}: {self.message}" if self.field else f"{self.where}: {self.message}"


def _type_problem(name: str, value: object) -> str | None:
    kind = FIELDS[name].kind
    if value is None:
        return None if FIELDS[name].optional else "must not be empty."
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"must be a number, got {value!r}."
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return None
        return f"must be a whole number, got {value!r}."
    if kind is str and not isinstance(value, str):
        return f"must be text, got {value!r}."
    if kind is list and not (isinstance(value, list) and all(isinstance(v, int) for v in value)):
        return f"must be a list of whole numbers, got {value!r}."
    if kind is dict and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        return f"must be a mapping of labels, got {value!r}."
    return None


def _unknown(name: str, known: list[str]) -> str:
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    return f"is not a known field.{hint}"


def _media_problems(values: dict) -> list[tuple[str, str]]:
    """Remote media must exist; local media must decode (audio) or open (image)."""
    out = []
    for name in ("audio", "image"):
        value = values.get(name)
        if not is_uri(value):
            continue
        try:
            if not exists(value):
                out.append((name, f"{value} does not exist."))
        except (StorageError, OSError) as e:
            out.append((name, f"{value} cannot be read: {e}"))
    audio, image = values.get("audio"), values.get("image")
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


def check_entry(entry: Entry, defaults: dict, num_layers: int | None) -> list[Problem]:
    """Problems of one entry after defaults apply: fields, types, ranges, media."""
    if "_not_a_mapping" in entry.data:
        return [Problem(entry.label, "", "must be a mapping of fields (id, audio, prompt, ...).")]
    out: list[Problem] = []
    known = [*FIELDS, GUIDER_SECTION]
    for name in entry.data:
        if name not in FIELDS:
            out.append(Problem(entry.label, name, _unknown(name, known)))
    values = merge(defaults, entry.data)
    for name in REQUIRED:
        if values.get(name) in (None, ""):
            out.append(Problem(entry.label, name, "is required."))
    typed = True
    for name in FIELDS:
        message = _type_problem(name, values.get(name))
        if message and not (name in REQUIRED and values.get(name) in (None, "")):
            out.append(Problem(entry.label, name, message))
            typed = False
    id_message = id_problem(values.get("id"))
    if id_message and values.get("id") not in (None, ""):
        out.append(Problem(entry.label, "id", id_message))
    if not typed or any(values.get(n) in (None, "") for n in REQUIRED):
        return out
    values["seed"] = values["seed"] if values["seed"] is not None else 0
    request = Item(values).to_request()
    reported = {p.field for p in out}
    for error in request.problems(num_layers):
        name = error.field if error.field in FIELDS else f"video_{error.field}"
        if name not in reported:
            out.append(Problem(entry.label, name, error.message))
    out += [Problem(entry.label, name, message) for name, message in _media_problems(values)]
    return out


def model_paths(model: dict) -> dict[str, str]:
    """The four bundle paths of a ``model:`` section: ``bundle: FOLDER`` (local or URI) and/or the upstream
    names (``checkpoint_path``, ``distilled_lora``, ``spatial_upsampler_path``, ``gemma_root``)."""
    paths = {role: join(model["bundle"], name) for role, name in RELEASED_NAMES.items()} if model.get("bundle") else {}
    paths.update({k: v for k, v in model.items() if k in RELEASED_NAMES and v})
    missing = [role for role in RELEASED_NAMES if role not in paths]
    if missing:
        raise BundleError(f"the model section lacks {', '.join(missing)}; give bundle: FOLDER or each path.")
    return paths


def bundle_from_model(model: dict, quantization: str | None = None) -> ModelBundle:
    """A local bundle, validated (headers only). Remote bundles are checked by the workers that fetch them."""
    return ModelBundle.from_paths(**model_paths(model), quantization=quantization or model.get("quantization", "none"))


def check_model(manifest: Manifest) -> tuple[list[Problem], int | None]:
    """Model-section problems, and the transformer's block count when the bundle is local."""
    model = manifest.model
    out = [Problem("model", k, _unknown(k, list(MODEL_KEYS))) for k in model if k not in MODEL_KEYS]
    if not model:
        return out, None
    try:
        paths = model_paths(model)
        if any(is_uri(p) for p in paths.values()):
            absent = [p for role, p in paths.items() if role != "gemma_root" and not exists(p)]
            return out + [Problem("model", "", f"{p} does not exist.") for p in absent], None
        bundle = bundle_from_model(model)
    except (BundleError, StorageError, TypeError) as e:
        return [*out, Problem("model", "", str(e))], None
    return out, bundle.checkpoint_config().get("transformer", {}).get("num_layers")


def validate(manifest: Manifest) -> list[Problem]:
    problems = [Problem("manifest", "", p) for p in manifest.top_level_problems]
    model_problems, num_layers = check_model(manifest)
    problems += model_problems
    for name in manifest.defaults:
        if name not in FIELDS:
            problems.append(Problem("defaults", name, _unknown(name, [*FIELDS, GUIDER_SECTION])))
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
