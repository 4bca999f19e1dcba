"""Read YAML and Parquet manifests into one shape: a model section, defaults, and located entries.

YAML is read safely and within bounds (``manifests.safe_yaml``: file size, nesting, values once aliases
expand), and a manifest holds at most ``MAX_ITEMS`` items, so no manifest can exhaust the driver. Relative
media paths resolve against the manifest's folder; ``s3://``, ``gs://`` and ``file://`` URIs pass through
untouched. A Parquet manifest takes its model section and defaults from a YAML file with the same stem beside
it (``people.parquet`` -> ``people.yaml``), from ``--defaults FILE``, or from CLI overrides.

Columns users already have: a key of an item or of the defaults, or a Parquet column, that is no item field and
no misspelling of one (``manifests.item_checks.typo_of``) is moved into the item's tags as a string
(``manifests.item.with_extras_as_tags``; explicit tags win on a clash) and named in ``Manifest.extra_columns``,
which validation turns into one warning. A misspelt key stays where it is, for validation to report.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from manifests import safe_yaml
from manifests.extra_columns import extra_columns, tag_value, with_extras_as_tags
from manifests.item import RECORDS, flatten, map_media
from manifests.model_options import ModelOptions
from storage.fs import NotFound, StorageError, download, exists, is_uri, join

TOP_LEVEL_KEYS = ("run_seed", "model", "defaults", "items")
MAX_ITEMS = 100_000  # per manifest, YAML or Parquet: a run plans, validates and fingerprints all at once


class ManifestError(ValueError):
    """The manifest file itself cannot be read (not YAML, not Parquet, wrong top-level shape)."""


class MissingFile(ManifestError):
    """The manifest or its defaults file is not there (a resume then compares without the items)."""

    def __init__(self, path: str | Path, what: str = "manifest file"):
        super().__init__(
            f"{path}: no such manifest file." if what == "manifest file" else f"{path}: the {what} does not exist."
        )
        self.path, self.what = str(path), what


@dataclass(frozen=True)
class Entry:
    """One item as written, with where it was written (``line 14`` or ``row 3``)."""

    index: int
    where: str
    data: dict

    @property
    def label(self) -> str:
        item_id = self.data.get("id")
        return f"item {item_id!r} ({self.where})" if item_id is not None else f"item #{self.index + 1} ({self.where})"


@dataclass(frozen=True)
class Manifest:
    path: Path
    model: dict
    defaults: dict
    entries: list[Entry]
    run_seed: int = 0
    top_level_problems: list[str] = field(default_factory=list)
    source: str = ""  # the path or URI as given
    extra_columns: tuple[str, ...] = ()  # columns or keys that are no item field, kept as tags (first seen first)


def resolve_media(value: object, base: Path | str) -> object:
    """Relative paths resolve against ``base`` (a folder, or the URI of a remote manifest's folder);
    absolute paths, URIs and non-strings are unchanged."""
    if not isinstance(value, str) or not value or is_uri(value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return join(str(base), value) if is_uri(str(base)) else str((Path(base) / path).resolve())


def _fetch(uri: str) -> Path:
    """A remote manifest (or its defaults file) copied to a temporary folder for reading."""
    try:
        return download(uri, Path(tempfile.mkdtemp(prefix="ltx-batch-manifest-")) / uri.rsplit("/", 1)[-1])
    except NotFound as e:
        raise MissingFile(uri) from e
    except (StorageError, OSError) as e:
        raise ManifestError(f"{uri}: cannot fetch the manifest: {e}") from e


def _resolve_entry(data: dict, base: Path | str) -> dict:
    return map_media(flatten(data), lambda value: resolve_media(value, base))


def _resolve_model(model: dict, base: Path | str) -> dict:
    return {k: resolve_media(v, base) if k != "quantization" else v for k, v in model.items()}


def _item_lines(root: yaml.Node | None) -> list[int]:
    """1-based line of each entry under ``items:`` (constructed values drop positions; nodes keep them)."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "items" and isinstance(value, yaml.SequenceNode):
            return [node.start_mark.line + 1 for node in value.value]
    return []


def _read_yaml(path: Path) -> tuple[dict, list[int]]:
    """The file's top-level mapping, read within ``manifests.safe_yaml``'s limits, and the line of each item."""
    try:
        root = safe_yaml.compose(path)
        data = safe_yaml.construct(root)
    except OSError as e:
        raise ManifestError(f"{path}: cannot read the manifest: {e}.") from e
    except safe_yaml.YamlRefused as e:
        raise ManifestError(f"{path}: {e}") from e
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: the manifest must be a mapping with model, defaults and items.")
    return data, _item_lines(root)


def _check_count(path: Path, count: int) -> None:
    if count > MAX_ITEMS:
        raise ManifestError(
            f"{path}: has {count:,} items, over the limit of {MAX_ITEMS:,} per manifest; split the batch into "
            "several runs."
        )


def _sections(data: dict, path: Path) -> tuple[dict, dict, int, list[str]]:
    problems = [
        f"unknown top-level key {k!r} in {path.name}; expected {', '.join(TOP_LEVEL_KEYS)}."
        for k in data
        if k not in TOP_LEVEL_KEYS
    ]
    model, defaults = data.get("model") or {}, data.get("defaults") or {}
    if not isinstance(model, dict):
        problems.append("model: must be a mapping of bundle paths and quantization.")
        model = {}
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a mapping of item fields.")
        defaults = {}
    run_seed = data.get("run_seed", 0)
    if not isinstance(run_seed, int) or isinstance(run_seed, bool):
        problems.append(f"run_seed: must be a whole number, got {run_seed!r}.")
        run_seed = 0
    return model, defaults, run_seed, problems


def load_manifest(path: str | Path, defaults_file: str | Path | None = None, overrides: dict | None = None) -> Manifest:
    """Load a ``.yaml``/``.yml`` or ``.parquet`` manifest (a path or URI). ``overrides`` beat its defaults."""
    source = str(path)
    if is_uri(source):
        path, base = _fetch(source), source.rsplit("/", 1)[0]
        sidecar_uri = source.rsplit(".", 1)[0] + ".yaml"
        if defaults_file is None and source.endswith(".parquet") and exists(sidecar_uri):
            defaults_file = _fetch(sidecar_uri)
    else:
        path = Path(path).expanduser().resolve()
        source, base = str(path), path.parent
    if not path.is_file():
        raise MissingFile(path)
    if path.suffix in (".yaml", ".yml"):
        data, lines = _read_yaml(path)
        items = data.get("items")
        if not isinstance(items, list):
            raise ManifestError(f"{path}: needs an 'items:' list, one entry per clip.")
        _check_count(path, len(items))
        columns = []
        entries = [
            Entry(
                i,
                f"line {lines[i]}" if i < len(lines) else f"entry {i + 1}",
                item if isinstance(item, dict) else {"_not_a_mapping": item},
            )
            for i, item in enumerate(items)
        ]
    elif path.suffix == ".parquet":
        try:
            _check_count(path, pq.ParquetFile(path).metadata.num_rows)
            rows = pq.read_table(path).to_pylist()
        except ManifestError:
            raise
        except Exception as e:  # pyarrow raises several types for a bad file
            raise ManifestError(f"{path}: not a readable Parquet file: {e}") from e
        entries = [Entry(i, f"row {i + 1}", _drop_nulls(row)) for i, row in enumerate(rows)]
        columns = [name for name in pq.read_schema(path).names if name not in RECORDS]
        sidecar = Path(defaults_file) if defaults_file else path.with_suffix(".yaml")
        data = _read_yaml(sidecar)[0] if sidecar.is_file() else {}
        if defaults_file and not sidecar.is_file():
            raise MissingFile(sidecar, "defaults file")
        base = sidecar.parent if sidecar.is_file() and not is_uri(source) else base
    else:
        raise ManifestError(f"{path}: a manifest is a .yaml, .yml or .parquet file.")
    model, defaults, run_seed, problems = _sections(data, path)
    defaults, entries, extras = _extras_as_tags({**defaults, **(overrides or {})}, entries, columns)
    defaults = _resolve_entry(defaults, base)
    entries = [e if "_not_a_mapping" in e.data else replace(e, data=_resolve_entry(e.data, base)) for e in entries]
    return Manifest(path, _resolve_model(model, base), defaults, entries, run_seed, problems, source, extras)


def _extras_as_tags(
    defaults: dict, entries: list[Entry], columns: list[str]
) -> tuple[dict, list[Entry], tuple[str, ...]]:
    """The defaults and entries (as written) with their extra columns (``manifests.item.extra_columns``: keys
    that are no item field and no typo of one) moved into tags, and the names of those columns: the defaults',
    then a Parquet file's ``columns`` (also one that is null throughout), then the entries' in order."""
    default_names = extra_columns(defaults)
    default_extras = {str(k): text for k in default_names if (text := tag_value(defaults[k])) is not None}
    defaults_left = {k: v for k, v in defaults.items() if k not in default_names}
    names = dict.fromkeys([*map(str, default_names), *extra_columns(dict.fromkeys(columns))])
    out = []
    for entry in entries:
        if "_not_a_mapping" in entry.data:
            out.append(entry)
            continue
        names.update(dict.fromkeys(str(k) for k in extra_columns(entry.data)))
        out.append(replace(entry, data=with_extras_as_tags(entry.data, defaults_left, default_extras)))
    return defaults_left, out, tuple(names)


def _drop_nulls(row: dict) -> dict:
    """Parquet has no 'absent': a null (or NaN in a float column) means 'use the default', also for a key of
    a struct in a list column (an image's frame)."""
    out = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if key == "tags" and isinstance(value, list):  # pyarrow reads a map column as key/value pairs
            value = dict(value)
        if key in RECORDS and isinstance(value, list):  # a null inside a struct: that key's default
            value = [_drop_nulls(r) if isinstance(r, dict) else r for r in value]
        out[key] = value
    return out


def set_overrides(pairs: list[str]) -> dict:
    """``--set FIELD=VALUE`` pairs as item fields, each value read as YAML (``--set seed=7``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ManifestError(f"--set {pair!r}: write FIELD=VALUE, e.g. --set num_inference_steps=20")
        out[key.strip()] = yaml.safe_load(value)
    return out


@dataclass(frozen=True)
class ManifestSource:
    """What a new run's items are read from: the manifest (a path or URI), the defaults YAML a Parquet manifest
    takes, the ``--set FIELD=VALUE`` overrides as given, and the model given on the command line."""

    path: str
    defaults: str | None = None
    overrides: tuple[str, ...] = ()
    model: ModelOptions = field(default_factory=ModelOptions)

    def read(self) -> Manifest:
        """The manifest with the overrides as its defaults' last word and the given model over its own."""
        manifest = load_manifest(self.path, self.defaults, set_overrides(list(self.overrides)))
        return replace(manifest, model=self.model.section(manifest.model))
