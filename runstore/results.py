"""The results table: a Parquet dataset under ``RUN/results/``, one row per item attempt.

Each shard attempt owns one file. It is rewritten after every item, always to a temporary name first and
then moved into place, so a reader never sees a partial file, a killed worker loses at most the item it
was on, and a retried shard (a new attempt number) never collides with an earlier attempt. Readers merge
attempts: the latest attempt per item wins. Plain ``pyarrow.dataset`` or ``pandas`` read it.

Each row carries the clip's quality scores (``quality``) as its worker measured them. Scores can be revised
afterwards (``ltx-batch score``, or scores that arrived after their row was written) and retry candidates
get their ``best`` mark when their run ends: such revisions never touch an attempt's row. They go to
``RUN/results/_revisions/`` (``RunFolder.revisions_uri``: a leading ``_`` keeps them out of the dataset),
keyed by item and video hash, so a revision follows the clip it was made for and a re-rendered clip starts
afresh. ``read_results`` applies them, the latest revision winning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ltxcore.upstream_defaults import DISTILLED_STEPS
from manifests.item import GUIDER_FIELDS, Item, arrow_schema
from manifests.windows import RENDERED_WINDOW
from quality.score_fields import SCORES, WINDOW_FIELDS
from runstore.claim import fenced_tokens
from runstore.compute import pc
from runstore.plan import PROMOTED_FROM, PlannedItem
from runstore.results_cache import read_rows
from runstore.run_folder import RunFolder
from storage.fs import filesystem, write_atomically

STATUSES = ("ok", "failed")
TRACEBACK = "Traceback"  # how the traceback of a failed row's error_message starts (error_text)
INVALID_INPUT = "InvalidInput"  # the error_type of items set aside by validation (runstore/invalid.py)
_TIMESTAMP = pa.timestamp("us", tz="UTC")
# quality.score_fields.FIELDS as Arrow: the scores (None where not measured), why any is missing, CPU seconds.
_WINDOW_TYPE = pa.struct([pa.field(name, pa.int64() if kind is int else pa.float64()) for name, kind in WINDOW_FIELDS])
QUALITY_TYPE = pa.struct(
    [pa.field(s.name, pa.int64() if s.kind is int else pa.float64()) for s in SCORES]
    + [
        pa.field("worst_seam_frame", pa.int64()),
        pa.field("windows", pa.list_(_WINDOW_TYPE)),
        pa.field("seams", pa.list_(pa.float64())),
        pa.field("reason", pa.string()),
        pa.field("seconds", pa.float64()),
    ]
)
REVISION_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string()),
        pa.field("output_sha256", pa.string()),  # the clip the revision is about
        pa.field("quality", QUALITY_TYPE),  # null: this revision leaves the scores as they were
        pa.field("best", pa.bool_()),  # null: this revision leaves the mark as it was
        pa.field("revised_at", _TIMESTAMP),
    ]
)

RESULT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("fingerprint", pa.string()),
        pa.field("shard_id", pa.int64()),
        pa.field("attempt", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("output_uri", pa.string()),
        pa.field("output_bytes", pa.int64()),
        pa.field("output_sha256", pa.string()),
        *[f for f in arrow_schema() if f.name != "id"],
        pa.field("prompt_enhanced", pa.string()),  # what Gemma wrote, when the item asked for enhancement
        pa.field("audio_padded_seconds", pa.float64()),
        pa.field("bundle", pa.string()),  # JSON: file names, sizes, mtimes, model version
        pa.field("quantization", pa.string()),
        pa.field("transformer", pa.string()),  # the checkpoint the worker held: dev or distilled (null: not rendered)
        pa.field("promoted_from", PROMOTED_FROM),  # the draft this render promotes (ltx-batch promote), or null
        pa.field("timings", pa.map_(pa.string(), pa.float64())),
        pa.field("peak_memory_bytes", pa.map_(pa.string(), pa.int64())),
        pa.field("device", pa.string()),
        pa.field("host", pa.string()),
        pa.field("started_at", _TIMESTAMP),
        pa.field("finished_at", _TIMESTAMP),
        pa.field("quality", QUALITY_TYPE),  # null: not scored (failed, scores still pending, or an older run)
        pa.field("best", pa.bool_()),  # retry candidates: the winner of its item by the chosen score
        pa.field("windows", pa.list_(RENDERED_WINDOW)),  # a long item's windows as rendered; null: one window
    ]
)


def applied_settings(item: Item, transformer: str | None) -> dict:
    """The item's settings as its render uses them: a distilled item runs ``DISTILLED_STEPS`` unguided steps
    (its guider fields are null), and a worker holding the distilled checkpoint applies no LoRA (its strength
    is null). The plan keeps the settings as written: promotion to a two-stage render uses them."""
    values = item.values
    if item.pipeline == "distilled":
        values.update(dict.fromkeys(GUIDER_FIELDS), num_inference_steps=DISTILLED_STEPS)
    if transformer == "distilled":
        values["distilled_lora_strength"] = None
    return values


def result_row(planned: PlannedItem, **fields) -> dict:
    """A row with the item's settings as rendered (``applied_settings``; ``images``: every conditioning image,
    whichever form the item used); ``fields`` adds the attempt's outcome."""
    settings = {k: v for k, v in applied_settings(planned.item, fields.get("transformer")).items() if k != "id"}
    settings["tags"] = list(settings["tags"].items())
    settings["images"] = planned.item.resolved_images
    row = {"item_id": planned.id, "fingerprint": planned.fingerprint, "promoted_from": planned.promoted_from}
    row.update(settings, **fields)
    if isinstance(row.get("bundle"), dict):
        row["bundle"] = json.dumps(row["bundle"], sort_keys=True)
    for name in ("timings", "peak_memory_bytes"):
        if isinstance(row.get(name), dict):
            row[name] = list(row[name].items())
    unknown = set(row) - set(RESULT_SCHEMA.names)
    if unknown:
        raise ValueError(f"unknown result fields {sorted(unknown)}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
    return row


def error_text(message: str, trace: str = "") -> str:
    """A failed row's ``error_message``: the message for the person running the batch, then (after a blank line)
    the traceback for whoever fixes the code; ``error_summary`` gives the message back."""
    trace = trace.strip()
    if not trace:
        return message
    if not trace.startswith(TRACEBACK):  # Ray's text of a worker's exception starts with the task's name
        trace = f"{TRACEBACK} (on the worker):\n{trace}"
    return f"{message}\n\n{trace}"


def error_summary(error_message: str) -> str:
    """The message of an ``error_text``, without its traceback."""
    return error_message.split(f"\n\n{TRACEBACK}", 1)[0]


def attempt_path(root: str, session: str, shard_id: int, attempt: int) -> str:
    return f"{root}/{session}-shard-{shard_id:05d}-attempt-{attempt:02d}.parquet"


def read_attempt(results_uri: str, session: str, shard_id: int, attempt: int) -> list[dict]:
    """The rows one shard attempt managed to write (none if it died before its first item finished)."""
    fs, root = filesystem(results_uri)
    path = attempt_path(root, session, shard_id, attempt)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    with fs.open_input_file(path) as f:
        return pq.read_table(f, schema=RESULT_SCHEMA).to_pylist()


@dataclass
class ShardRecorder:
    """Collects one shard attempt's rows and keeps its file current after every item."""

    results_uri: str
    run_id: str
    session: str  # one per driver invocation, so a resumed run never reuses an earlier file name
    shard_id: int
    attempt: int

    def __post_init__(self):
        self.fs, self.root = filesystem(self.results_uri)
        self.fs.create_dir(self.root, recursive=True)
        self.rows: list[dict] = []
        self.path = attempt_path(self.root, self.session, self.shard_id, self.attempt)

    def add(self, row: dict) -> None:
        self.rows.append({**row, "run_id": self.run_id, "shard_id": self.shard_id, "attempt": self.attempt})
        table = pa.Table.from_pylist(self.rows, schema=RESULT_SCHEMA)
        write_atomically(self.fs, self.path, lambda stream: pq.write_table(table, stream))


def write_invalid_rows(results_uri: str, run_id: str, session: str, rows: list[dict]) -> None:
    """The InvalidInput rows of one driver session (see ``runstore/invalid.py``), in a file of their own
    written once, atomically; nothing when there are none."""
    if not rows:
        return
    fs, root = filesystem(results_uri)
    fs.create_dir(root, recursive=True)
    rows = [{**row, "run_id": run_id, "attempt": 0} for row in rows]
    unknown = {name for row in rows for name in row} - set(RESULT_SCHEMA.names)
    if unknown:
        raise ValueError(f"unknown result fields {sorted(unknown)}")
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    write_atomically(fs, f"{root}/{session}-invalid.parquet", lambda stream: pq.write_table(table, stream))


def ok_count(results_uri: str) -> int:
    """How many items have an ``ok`` attempt."""
    table = read_results(results_uri, ["item_id", "status", "fingerprint"])
    return len({item_id for item_id, _ in done_fingerprints(table)})


def read_results(results_uri: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Every attempt ever recorded (hidden temporary files are skipped), with its latest revisions applied; only
    ``columns`` when given (a big run reads much faster so). Many attempt files read through a cache
    (``runstore.results_cache``)."""
    names = list(columns or RESULT_SCHEMA.names)
    run = RunFolder.of_results(results_uri)
    fs, root = run.fs, run.fs_path(run.results_uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return RESULT_SCHEMA.empty_table().select(names)
    fenced = fenced_tokens(run)
    files = [
        i
        for i in fs.get_file_info(pafs.FileSelector(root))
        if i.type == pafs.FileType.File and _counted(i.base_name, fenced)
    ]
    revised = [c for c in ("quality", "best") if c in names]
    keys = [c for c in ("item_id", "output_sha256") if revised and c not in names]
    attempts = read_rows(fs, run.fs_path(run.results_cache_uri), files, RESULT_SCHEMA, names + keys)
    revisions = _read_revisions(fs, run.fs_path(run.revisions_uri)) if revised else REVISION_SCHEMA.empty_table()
    return apply_revisions(attempts, revisions).select(names)


def _counted(name: str, fenced: set[str]) -> bool:
    """An attempt file: Parquet, not hidden, not written by a fenced (taken-over) driver session."""
    return name.endswith(".parquet") and not name.startswith((".", "_")) and name.split("-", 1)[0] not in fenced


def revise(results_uri: str, revisions: list[dict], name: str) -> None:
    """Record revisions (``item_id``, ``output_sha256`` and a new ``quality`` and/or ``best``) as one new file
    named after ``name`` (unique per writer: a session, an item)."""
    run = RunFolder.of_results(results_uri)
    fs, folder, now = run.fs, run.fs_path(run.revisions_uri), datetime.now(UTC)
    fs.create_dir(folder, recursive=True)
    table = pa.Table.from_pylist([{**r, "revised_at": now} for r in revisions], schema=REVISION_SCHEMA)
    write_atomically(fs, f"{folder}/{now:%Y%m%dT%H%M%S%f}-{name}.parquet", lambda s: pq.write_table(table, s))


def _read_revisions(fs: pafs.FileSystem, folder: str) -> pa.Table:
    if fs.get_file_info(folder).type == pafs.FileType.NotFound:
        return REVISION_SCHEMA.empty_table()
    return ds.dataset(folder, filesystem=fs, format="parquet", schema=REVISION_SCHEMA).to_table()


def apply_revisions(attempts: pa.Table, revisions: pa.Table) -> pa.Table:
    """``attempts`` with each clip's latest revised ``quality`` and ``best`` in place of the recorded ones (those
    of the two columns it has)."""
    if revisions.num_rows == 0:
        return attempts
    latest_first = revisions.take(pc.sort_indices(revisions, [("revised_at", "ascending")])[::-1])
    clip = _clip_key(attempts)
    for column in ("quality", "best"):
        if column not in attempts.column_names:
            continue
        found = latest_first.filter(pc.is_valid(latest_first.column(column)))  # the first of a clip's is its latest
        revised = found.column(column).take(pc.index_in(clip, value_set=_clip_key(found)))
        index = attempts.schema.get_field_index(column)
        attempts = attempts.set_column(index, column, pc.coalesce(revised, attempts.column(column)))
    return attempts


def _clip_key(table: pa.Table) -> pa.ChunkedArray:
    """Item id and video hash as one string per row, the key revisions match rows by."""
    return pc.binary_join_element_wise(
        table.column("item_id"), table.column("output_sha256"), "\n", null_handling="replace"
    )


def latest_attempts(table: pa.Table) -> pa.Table:
    """One row per item: its latest attempt (by finish time, then attempt number)."""
    if table.num_rows == 0:
        return table
    order = table.sort_by([("item_id", "ascending"), ("finished_at", "descending"), ("attempt", "descending")])
    ids = order.column("item_id").combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))  # where a new item's rows start
    return order.filter(pa.concat_arrays([pa.array([True]), first]))


def done_fingerprints(table: pa.Table) -> set[tuple[str, str]]:
    ok = table.filter(pc.field("status") == "ok")
    return set(zip(ok.column("item_id").to_pylist(), ok.column("fingerprint").to_pylist(), strict=True))


def still_to_render(planned: list[PlannedItem], results_uri: str) -> list[PlannedItem]:
    """Items of the plan with no ``ok`` row for the same fingerprint. Resume renders exactly these."""
    done = done_fingerprints(read_results(results_uri))
    return [p for p in planned if (p.id, p.fingerprint) not in done]
