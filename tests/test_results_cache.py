"""A results folder of a few hundred attempt files (``tools.synthetic_run``, written by the run store's own
writers) read through its cache (``runstore.results_cache``): the rows are always those of the files as they are
now, whatever was added, rewritten, removed or fenced since the cache was written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from runstore.results import RESULT_SCHEMA, ShardRecorder, read_results, result_row
from runstore.results_cache import REFRESH_FILES
from runstore.run_folder import RunFolder
from tools.synthetic_run import RESUME_SESSION, T0, build_synthetic_run, synthetic_plan

COMPARED = ["item_id", "shard_id", "attempt", "status", "error_message", "finished_at", "output_sha256"]


@pytest.fixture
def results(tmp_path) -> Path:
    build_synthetic_run(tmp_path / "run", 400, attempts_per_file=2)
    folder = tmp_path / "run" / "results"
    assert len(list(folder.glob("*.parquet"))) >= REFRESH_FILES
    return folder


def _run(results: Path) -> RunFolder:
    return RunFolder(str(results.parent))


def _files_as_they_are(folder: Path) -> list[tuple]:
    """Every row of the counted attempt files, read one file at a time with plain pyarrow."""
    fenced = {p.name for p in Path(_run(folder).fenced_uri).glob("*")}
    files = [p for p in sorted(folder.glob("*.parquet")) if p.name.split("-", 1)[0] not in fenced]
    table = pa.concat_tables(pq.read_table(p, schema=RESULT_SCHEMA).select(COMPARED) for p in files)
    return sorted(tuple(r.values()) for r in table.to_pylist())


def _read(folder: Path) -> list[tuple]:
    return sorted(tuple(r.values()) for r in read_results(str(folder), COMPARED).to_pylist())


def test_the_cache_follows_files_added_rewritten_and_removed(results):
    cache = Path(_run(results).results_cache_uri)
    cache.unlink()  # the one the run's summary left
    assert _read(results) == _files_as_they_are(results)
    assert cache.is_file()  # every file was read: the next reader takes them from here
    written = cache.stat().st_mtime_ns

    first, second = sorted(results.glob("1f0c2a9d3b4e-shard-*.parquet"))[:2]
    table = pq.read_table(first)
    pq.write_table(table.slice(0, table.num_rows - 1), first)  # rewritten with a row less
    second.unlink()
    planned = synthetic_plan(1)[0]
    recorder = ShardRecorder(str(results), "synthetic", RESUME_SESSION, 999, 0)
    recorder.add(result_row(planned, status="ok", started_at=T0, finished_at=T0, output_sha256="new"))
    assert _read(results) == _files_as_they_are(results)
    assert "new" in [row[-1] for row in _read(results)]
    assert cache.stat().st_mtime_ns == written  # three files read afresh: not worth rewriting the cache

    full = read_results(str(results))  # every column, scores revised, as before the cache
    assert read_results(str(results), ["item_id", "quality"]).equals(full.select(["item_id", "quality"]))
    assert full.schema == RESULT_SCHEMA and full.column("quality").null_count < full.num_rows


def test_rows_of_a_fenced_session_drop_out_of_the_cache(results):
    before = _read(results)
    Path(_run(results).fenced_uri).mkdir()
    Path(_run(results).fence_uri(RESUME_SESSION)).write_bytes(b"")  # the resume was taken over
    after = _read(results)
    assert after == _files_as_they_are(results) and len(after) < len(before)


def test_a_cache_written_for_other_columns_is_replaced(results):
    expected = _files_as_they_are(results)
    read_results(str(results))
    cache = Path(_run(results).results_cache_uri)
    older = pq.read_table(cache)
    pq.write_table(older.drop_columns(["windows"]), cache)  # as a version before long items would have left it
    assert _read(results) == expected
    assert "windows" in pq.read_schema(cache).names  # rewritten with today's columns


def test_a_run_of_few_files_gets_no_cache(tmp_path):
    build_synthetic_run(tmp_path / "run", 40)
    results = tmp_path / "run" / "results"
    assert _read(results) == _files_as_they_are(results)
    assert not Path(_run(results).results_cache_uri).exists()
    rows = read_results(str(results), ["item_id", "status"])
    assert rows.column_names == ["item_id", "status"] and pc.sum(pc.equal(rows.column("status"), "ok")).as_py() > 0
