"""A copy of the results dataset's rows in one Parquet file (``RunFolder.results_cache_uri``), so that a run
of many thousand attempt files reads in about a second.

Each attempt file costs a reader a millisecond or more whatever few rows it holds (its footer describes every
column, nested ones leaf by leaf): 100,000 items in 16,000 files take a minute to read file by file. A reader
that had to read at least ``REFRESH_FILES`` files saves every row it read as the cache, each row keyed by its
file's name, size and modification time; later readers take the rows of unchanged files from the cache and read
only the files written or rewritten since. A rewritten file (an attempt that went on) has a new size and time,
so its cached rows never stand in for it; a file no longer counted (a fenced session's) drops its rows.
A file without rows (workers leave none) has nothing to cache and is read every time.

The cache is derived data, written atomically: deleting it loses nothing, and a reader that cannot write it (a
read-only bucket) reads on without it. A run of fewer files than ``REFRESH_FILES`` never gets one.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runstore.compute import pc
from storage.fs import write_atomically

READ_GROUP = 500  # attempt files read together
REFRESH_FILES = 200  # reading this many small files costs about what rewriting the cache of a big run does
# The attempt file a cached row came from, as listed when it was read.
KEY_FIELDS = [pa.field("_file", pa.string()), pa.field("_size", pa.int64()), pa.field("_mtime_ns", pa.int64())]
KEY = tuple(f.name for f in KEY_FIELDS)


def read_rows(
    fs: pafs.FileSystem, path: str, files: list[pafs.FileInfo], schema: pa.Schema, columns: list[str]
) -> pa.Table:
    """``columns`` of every row of the attempt ``files`` (as listed), each file cast to ``schema``: unchanged
    files' rows from the cache at ``path``, the others read; the cache refreshed when that took
    ``REFRESH_FILES`` files or more."""
    known = _cached_keys(fs, path, schema)
    fresh = [f for f in files if (f.base_name, f.size, f.mtime_ns) not in known]
    refresh = len(fresh) >= REFRESH_FILES
    wanted = schema.names if refresh else columns
    unchanged = {f.base_name for f in files} - {f.base_name for f in fresh}
    parts = [_read_files(fs, fresh, schema, wanted)] if fresh else []
    if unchanged:
        cached = pq.read_table(path, filesystem=fs, columns=[*wanted, *KEY])
        parts.append(cached.filter(pc.is_in(cached.column(KEY[0]), pa.array(sorted(unchanged), pa.string()))))
    if not parts:
        return schema.empty_table().select(columns)
    rows = pa.concat_tables(parts)
    if refresh:
        _write(fs, path, rows)
    return rows.select(columns)


def _cached_keys(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> set[tuple[str, int, int]]:
    """(name, size, mtime) of the files the cache holds; none without a cache, or with one written for other
    columns (by an older version)."""
    try:
        if [f for f in pq.read_schema(path, filesystem=fs) if f.name not in KEY] != list(schema):
            return set()
        table = pq.read_table(path, filesystem=fs, columns=list(KEY))
    except (FileNotFoundError, pa.ArrowInvalid):
        return set()
    unique = table.group_by(list(KEY)).aggregate([])
    return set(zip(*(unique.column(name).to_pylist() for name in KEY), strict=True))


def _read_files(fs: pafs.FileSystem, files: list[pafs.FileInfo], schema: pa.Schema, columns: list[str]) -> pa.Table:
    """``columns`` of ``files``, each row with the key of its file."""
    listed = pa.table(
        {
            "path": [f.path for f in files],
            KEY[0]: [f.base_name for f in files],
            KEY[1]: [f.size for f in files],
            KEY[2]: [f.mtime_ns for f in files],
        },
        schema=pa.schema([pa.field("path", pa.string()), *KEY_FIELDS]),
    )
    paths = listed.column("path").to_pylist()
    rows = pa.concat_tables(  # a group's rows in one chunk: a chunk per file and column costs gigabytes at 16,000
        ds.dataset(paths[n : n + READ_GROUP], filesystem=fs, format="parquet", schema=schema)
        .to_table(columns=[*columns, "__filename"])
        .combine_chunks()
        for n in range(0, len(paths), READ_GROUP)
    )
    keys = listed.take(pc.index_in(rows.column("__filename"), value_set=listed.column("path")))
    return pa.Table.from_arrays(
        [*rows.columns[:-1], *keys.select(list(KEY)).columns], schema=pa.schema([*rows.schema][:-1] + KEY_FIELDS)
    )


def _write(fs: pafs.FileSystem, path: str, rows: pa.Table) -> None:
    """Save ``rows`` as the cache; a reader without the right to write goes on without."""
    table = rows.combine_chunks()
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        write_atomically(fs, path, lambda stream: pq.write_table(table, stream))
    except OSError:
        pass
