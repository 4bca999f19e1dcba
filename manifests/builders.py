"""Manifest builders for the two common batches: a multilingual lesson series and a personalization run.

Both check everything before writing anything, and report every problem at once (row by row), so a
5,000-row CSV with three typos costs one round trip, not three.
"""

from __future__ import annotations

import csv
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ltxcore.errors import RenderInputError
from ltxcore.media import probe_audio
from ltxcore.request import LoraSpec
from ltxcore.shapes import frames_for_duration
from manifests.item import KINDS, arrow_schema, id_problem
from storage.fs import is_uri

AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".flac")


class BuildError(ValueError):
    """Every problem found in the builder's inputs, one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Recording:
    lesson: str
    language: str
    path: Path


def find_recordings(audio_root: Path, lesson: str | None = None) -> list[Recording]:
    """``ROOT/<lang>.<ext>`` is one lesson; ``ROOT/<lesson>/<lang>.<ext>`` is a series of lessons."""
    files = sorted(p for p in audio_root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if files:
        name = lesson or audio_root.name
        return [Recording(name, p.stem, p) for p in files]
    return [
        Recording(folder.name, p.stem, p)
        for folder in sorted(d for d in audio_root.iterdir() if d.is_dir())
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    ]


def grouping_lines(recordings: list[Recording]) -> list[str]:
    """What ``find_recordings`` grouped, a line per lesson, and a warning for languages whose names differ only
    in case (``de.mp3`` and ``DE.MP3`` become two items, likely one recording saved twice)."""
    lessons: dict[str, list[str]] = {}
    for rec in recordings:
        lessons.setdefault(rec.lesson, []).append(rec.language)
    lines = [f"{len(recordings)} recording(s) grouped as {len(lessons)} lesson(s):"]
    lines += [
        f"  {lesson}: {len(languages)} language(s) ({', '.join(languages)})" for lesson, languages in lessons.items()
    ]
    for lesson, languages in lessons.items():
        by_case: dict[str, list[str]] = {}
        for language in languages:
            by_case.setdefault(language.casefold(), []).append(language)
        lines += [
            f"warning: {lesson}: {' and '.join(same)} differ only in case, so they are {len(same)} items; "
            "rename or remove one if they are the same language."
            for same in by_case.values()
            if len(same) > 1
        ]
    return lines


@dataclass(frozen=True)
class ImageSpec:
    """A conditioning image for every item: the presenter at frame 0, another pose later (``--image``)."""

    path: Path
    frame: int = 0
    strength: float = 1.0


def build_lessons(
    image: Path | list[ImageSpec],
    audio_root: Path,
    prompt: str,
    out: Path,
    *,
    seed: int = 42,
    frame_rate: float = 25.0,
    height: int = 512,
    width: int = 768,
    lesson: str | None = None,
    loras: Sequence[tuple[str, float]] = (),
    enhance_prompt: bool = False,
) -> Path:
    """A YAML manifest: one item per (lesson, language), ids like ``lesson03-de``, one shared seed and the
    frames that cover each whole recording. ``image``: one presenter image, or several images with their
    frames and strengths; ``enhance_prompt``: Gemma rewrites the prompt (once, as every item shares it);
    ``loras`` (path, strength), e.g. the presenter's, apply to every item."""
    images = [ImageSpec(image)] if isinstance(image, Path) else list(image)
    problems = [f"image {i.path}: no such file." for i in images if not i.path.is_file()]
    lora_entries = [_lora_entry(path, strength, Path.cwd(), "--lora", problems) for path, strength in loras]
    if not audio_root.is_dir():
        raise BuildError([f"audio folder {audio_root}: no such folder."])
    recordings = find_recordings(audio_root, lesson)
    if not recordings:
        problems.append(
            f"audio folder {audio_root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in it or its sub-folders."
        )
    items = []
    for rec in recordings:
        item_id = f"{rec.lesson}-{rec.language}"
        if why := id_problem(item_id):
            problems.append(f"{rec.path}: the id {why}")
            continue
        try:
            duration = probe_audio(str(rec.path)).duration
        except RenderInputError as e:
            problems.append(f"{rec.path}: {e.message}")
            continue
        frames = frames_for_duration(duration, frame_rate)
        items.append(
            {
                "id": item_id,
                "audio": str(rec.path.resolve()),
                "num_frames": frames,
                "tags": {"lesson": rec.lesson, "language": rec.language},
            }
        )
    if problems:
        raise BuildError(problems)
    if images == [ImageSpec(images[0].path)]:  # one plain image: the shorthand
        conditioning = {"image": str(images[0].path.resolve())}
    else:
        conditioning = {"images": [{**vars(i), "path": str(i.path.resolve())} for i in images]}
    manifest = {
        "defaults": {
            **conditioning,
            **({"enhance_prompt": True} if enhance_prompt else {}),
            "prompt": prompt,
            "seed": seed,
            "frame_rate": frame_rate,
            "height": height,
            "width": width,
            **({"loras": lora_entries} if lora_entries else {}),
        },
        "items": items,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    return out


def _lora_entry(path: str, strength: float, base: Path, where: str, problems: list[str]) -> dict:
    """A manifest ``loras`` entry; a local path is made absolute (against ``base``) and must exist."""
    if not is_uri(path):
        local = (base / Path(path).expanduser()).resolve()
        if not local.is_file():
            problems.append(f"{where}: LoRA file {path!r} does not exist.")
        path = str(local)
    if not path.endswith(".safetensors"):
        problems.append(f"{where}: LoRA {path!r} is not a .safetensors file.")
    return {"path": path, "strength": strength}


def parse_lora_cell(cell: str) -> tuple[str, float] | None:
    """A CSV LoRA cell: ``PATH`` or ``PATH:STRENGTH`` (``brand.safetensors:0.8``); empty: none. The part after
    the last colon is a strength only if it reads as a number, so ``s3://...`` and ``C:\\...`` stay paths."""
    cell = cell.strip()
    if not cell:
        return None
    path, sep, strength = cell.rpartition(":")
    try:
        return (path.strip(), float(strength)) if sep else (cell, LoraSpec.strength)
    except ValueError:
        return cell, LoraSpec.strength


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def build_personalization(
    csv_path: Path,
    template: str,
    out: Path,
    *,
    audio_column: str = "audio",
    image_column: str | None = None,
    id_column: str | None = None,
    lora_columns: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> Path:
    """A Parquet manifest, one row per CSV row: the prompt from ``template``'s ``{field}`` placeholders,
    the other columns as tags. Each of ``lora_columns`` holds one LoRA per row (``PATH`` or
    ``PATH:STRENGTH``); a row whose LoRA cells are all empty gets the defaults' ``loras``. ``defaults`` go to
    the YAML beside it (same stem)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    problems = [
        f"template placeholder {{{name}}} has no column in {csv_path.name} (columns: {', '.join(columns)})."
        for name in template_fields(template)
        if name not in columns
    ]
    for needed in (audio_column, image_column, id_column, *lora_columns):
        if needed and needed not in columns:
            problems.append(f"column {needed!r} is missing from {csv_path.name}.")
    unknown = sorted(set(defaults or {}) - set(KINDS))
    problems += [f"default {name!r} is not a manifest field." for name in unknown]
    if problems:
        raise BuildError(problems)
    out_rows, seen = [], {}
    base = csv_path.parent
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path.name} line {number}"
        empty = [name for name in template_fields(template) if not (row.get(name) or "").strip()]
        problems += [f"{where}: {name!r} is empty but the prompt template needs it." for name in empty]
        item_id = (row.get(id_column) or "").strip() if id_column else f"{csv_path.stem}-{number - 1:05d}"
        if why := id_problem(item_id):
            problems.append(f"{where}: id {why}")
        elif item_id in seen:
            problems.append(f"{where}: id {item_id!r} repeats line {seen[item_id]}.")
        seen.setdefault(item_id, number)
        audio = (base / row.get(audio_column, "").strip()).resolve()
        if not row.get(audio_column, "").strip() or not audio.is_file():
            problems.append(f"{where}: audio file {row.get(audio_column, '')!r} does not exist.")
        image = (base / row[image_column].strip()).resolve() if image_column and row.get(image_column) else None
        if image_column and (image is None or not image.is_file()):
            problems.append(f"{where}: image file {row.get(image_column, '')!r} does not exist.")
        cells = [(column, parse_lora_cell(row.get(column) or "")) for column in lora_columns]
        loras = [_lora_entry(*lora, base, f"{where} column {column!r}", problems) for column, lora in cells if lora]
        if empty:
            continue
        used = {audio_column, image_column, id_column, *lora_columns}
        out_rows.append(
            {
                "id": item_id,
                "audio": str(audio),
                "image": str(image) if image else None,
                "prompt": template.format(**row),
                "tags": [(k, v) for k, v in row.items() if k not in used and v],
                "loras": loras or None,
            }
        )
    if problems:
        raise BuildError(problems)
    columns = ("id", "audio", "image", "prompt", "tags", *(("loras",) if lora_columns else ()))
    schema = pa.schema([arrow_schema().field(name) for name in columns])
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(out_rows, schema=schema), out)
    if defaults:
        out.with_suffix(".yaml").write_text(yaml.safe_dump({"defaults": defaults}, sort_keys=False))
    return out
