"""The run folder: what was submitted, the resolved plan, outputs and results, all under one root.

Its layout is named here and nowhere else: each file or folder of a run is one property or method of
``RunFolder`` (the layout section below), whose docstring says what lives there. Other modules ask it for paths
instead of joining names onto a run's root, so the layout is read in one place and kept as old runs wrote it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from manifests.item import Item, id_problem
from runstore.plan import HASHED_WHEN_SET, PLAN_SCHEMA, PlannedItem, plan_from_table, plan_table
from storage.fs import filesystem, write_atomically

MARKER = "ltx-batch-run"
RESULTS = "results"
PLAN_ROWS = 10_000  # rows of plan.parquet made and written at a time: a big plan is never one table in memory


class NotARun(ValueError):
    """A folder given as a run is none."""


def _marker_being_written(name: str) -> bool:
    """Another driver's marker on its way into place (``write_atomically``): the folder is a run starting."""
    return name.startswith(f".{MARKER}.") and name.endswith(".tmp") and "/" not in name


def new_run_id() -> str:
    """A run's id: when it was submitted, and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def code_version() -> str:
    """The git commit when run from a checkout, else the installed package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"ltx-batch=={metadata.version('ltx-batch')}"
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class RunFolder:
    """One run folder (a local path or an object-store URI). An instance serves one command: run.json, written
    once at submission, is read at most once through it (``run_info``), however many steps need it."""

    uri: str
    fs: pafs.FileSystem = field(init=False)
    root: str = field(init=False)
    _run_json: bytes | None = field(default=None, init=False, repr=False, compare=False)  # as read or written

    def __post_init__(self):
        fs, root = filesystem(self.uri)
        object.__setattr__(self, "fs", fs)
        object.__setattr__(self, "root", root.rstrip("/"))

    @classmethod
    def of_results(cls, results_uri: str) -> RunFolder:
        """The run whose results dataset is ``results_uri``: for readers given the dataset alone, whose fences
        and revisions are the run's."""
        parent, _, name = results_uri.rstrip("/").rpartition("/")
        if name != RESULTS:
            raise ValueError(f"{results_uri} is not a run's results folder (RUN/{RESULTS})")
        return cls(parent or ".")

    # The layout: every file and folder of a run, as a URI (``fs_path`` gives its path on ``fs``).

    def _sub_uri(self, *parts: str) -> str:
        return "/".join([self.uri.rstrip("/"), *parts])

    def fs_path(self, uri: str) -> str:
        """Where ``uri``, one of this run's, lies on ``fs``: for reading and writing through the run's own
        filesystem rather than opening another."""
        base = self.uri.rstrip("/")
        if uri != base and not uri.startswith(f"{base}/"):
            raise ValueError(f"{uri} is not in the run folder {self.uri}")
        return self.root + uri[len(base) :]

    @property
    def marker_uri(self) -> str:
        """``ltx-batch-run``, written before anything else: a folder without it (or a plan) that holds files is
        not ours to write into."""
        return self._sub_uri(MARKER)

    def submitted_uri(self, name: str) -> str:
        """``submitted/<name>``: the manifest exactly as submitted and its Parquet defaults file (a retry run's
        manifest, which ``retry-weak`` writes)."""
        return self._sub_uri("submitted", name)

    @property
    def plan_uri(self) -> str:
        """``plan.parquet``: the resolved plan with fingerprints; a resume reads this, not the source manifest."""
        return self._sub_uri("plan.parquet")

    @property
    def run_json_uri(self) -> str:
        """``run.json``: who submitted what (CLI arguments, code version, bundle identity, run id) and the
        semantics its items render with where a later version changed them (``frozen_audio_sigma``)."""
        return self._sub_uri("run.json")

    @property
    def session_uri(self) -> str:
        """``session``: the one driver session whose workers may write results (``claim``, ``owned_by``)."""
        return self._sub_uri("session")

    @property
    def claim_uri(self) -> str:
        """``lease.json``: the driver that holds the run (``runstore.claim``); a claim taken over on a local disk
        is first renamed beside it, to ``.lease.json.<token>.replaced``."""
        return self._sub_uri("lease.json")

    @property
    def beats_uri(self) -> str:
        """``lease-beats/``: the holders' beat files (``beat_uri``)."""
        return self._sub_uri("lease-beats")

    def beat_uri(self, token: str) -> str:
        """``lease-beats/<token>``: touched by a driver session while it holds the run; a stale one frees it."""
        return self._sub_uri("lease-beats", token)

    @property
    def fenced_uri(self) -> str:
        """``fenced/``: an empty file per driver session taken over (``fence_uri``)."""
        return self._sub_uri("fenced")

    def fence_uri(self, token: str) -> str:
        """``fenced/<token>``: that session's workers stop writing and its results rows do not count."""
        return self._sub_uri("fenced", token)

    @property
    def videos_uri(self) -> str:
        """``videos/``: the clips (``video_uri``)."""
        return self._sub_uri("videos")

    def video_uri(self, item_id: str) -> str:
        """``videos/<id>.mp4``: an item's clip."""
        return self._sub_uri("videos", f"{_checked(item_id)}.mp4")

    @property
    def results_uri(self) -> str:
        """``results/``: the results dataset, a Parquet file per shard attempt and per session's InvalidInput
        rows (``runstore.results``)."""
        return self._sub_uri(RESULTS)

    @property
    def revisions_uri(self) -> str:
        """``results/_revisions/``: later scores and best marks of rows, never written into an attempt's file
        (the leading ``_`` keeps them out of the dataset for pyarrow and pandas)."""
        return self._sub_uri(RESULTS, "_revisions")

    @property
    def results_cache_uri(self) -> str:
        """``results/_cache/rows.parquet``: the attempts' rows in one file, read instead of thousands of small
        ones (``runstore.results_cache``); derived, so deleting it loses nothing."""
        return self._sub_uri(RESULTS, "_cache", "rows.parquet")

    @property
    def invalid_uri(self) -> str:
        """``invalid.json``: the entries ``--skip-invalid`` set aside, as written, validated again by each resume
        (``runstore.invalid``); only such runs have it."""
        return self._sub_uri("invalid.json")

    @property
    def retry_uri(self) -> str:
        """``retry.json``: where a retry run's candidates came from and the score that picks the best
        (``runstore.best_candidates``); only retry runs have it."""
        return self._sub_uri("retry.json")

    @property
    def windows_uri(self) -> str:
        """``windows/``: long items' finished windows, a folder per item (``item_windows_uri``)."""
        return self._sub_uri("windows")

    def item_windows_uri(self, item_id: str, fingerprint: str) -> str:
        """``windows/<id>-<fingerprint[:16]>/``: an item's finished windows (``runstore.window_store``); with the
        fingerprint in the name, an item edited under the same id starts afresh."""
        return self._sub_uri("windows", f"{_checked(item_id)}-{fingerprint[:16]}")

    @property
    def report_uri(self) -> str:
        """``report/``: the HTML report (``ray_jobs.report``)."""
        return self._sub_uri("report")

    @property
    def report_page_uri(self) -> str:
        """``report/index.html``: the page, which links its posters and the videos relatively (``report.js``)."""
        return self._sub_uri("report", "index.html")

    @property
    def posters_uri(self) -> str:
        """``report/posters/``: the report's poster frames (``poster_uri``)."""
        return self._sub_uri("report", "posters")

    def poster_uri(self, item_id: str) -> str:
        """``report/posters/<id>.jpg``: an ok clip's middle frame, remade when its video is newer."""
        return self._sub_uri("report", "posters", f"{_checked(item_id)}.jpg")

    # Reading and writing the run.

    def exists(self) -> bool:
        return self.fs.get_file_info(self.fs_path(self.plan_uri)).type == pafs.FileType.File

    def foreign_files(self) -> list[str]:
        """Files in the folder when it is neither absent, empty, nor one of our runs (marker or plan)."""
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound or self.exists():
            return []
        if info.type == pafs.FileType.File:
            return [self.root]
        if self.fs.get_file_info(self.fs_path(self.marker_uri)).type == pafs.FileType.File:
            return []
        found = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        names = (i.path[len(self.root) + 1 :] for i in found if i.type == pafs.FileType.File)
        return sorted(n for n in names if not _marker_being_written(n))

    def foreign_problem(self) -> str | None:
        """Why the folder may not become a run (it holds files we did not write), or None when it may."""
        foreign = self.foreign_files()
        if not foreign:
            return None
        shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
        return (
            f"{self.uri} is not empty and not an ltx-batch run folder (it holds {shown}); "
            "nothing was written: pick an empty or new --out."
        )

    def mark(self) -> None:
        """Write the marker: before anything else, so a folder we started is recognised as ours."""
        self.write_file(self.marker_uri, b"ltx-batch run folder\n")

    def record_submission(
        self, manifest_files: list[Path], planned: list[PlannedItem], details: dict, run_id: str | None = None
    ) -> str:
        """Save the manifest copy, the plan and run.json; return the run id: ``run_id`` (made before planning, so
        that workers start meanwhile) or a new one."""
        run_id = run_id or new_run_id()
        for path in manifest_files:
            self.write_file(self.submitted_uri(path.name), path.read_bytes())
        self.record_plan(planned)
        info = {
            "run_id": run_id,
            "submitted_at": datetime.now(UTC).isoformat(),
            "code_version": code_version(),
            "frozen_audio_sigma": Item.model_fields["frozen_audio_sigma"].default,  # what items not setting it get
            **details,
        }
        run_json = json.dumps(info, indent=1, default=str).encode()
        self.write_file(self.run_json_uri, run_json)
        object.__setattr__(self, "_run_json", run_json)  # what a read would give: this command never reads it
        self.fs.create_dir(self.fs_path(self.videos_uri), recursive=True)
        return run_id

    def record_plan(self, planned: list[PlannedItem]) -> None:
        """Write the plan: at submission, and when a resume adds set-aside items that now pass validation. It is
        made and written ``PLAN_ROWS`` rows at a time, into place once whole."""

        def write(stream) -> None:
            with pq.ParquetWriter(stream, PLAN_SCHEMA) as writer:
                for start in range(0, len(planned), PLAN_ROWS):
                    writer.write_table(plan_table(planned[start : start + PLAN_ROWS]))

        self.fs.create_dir(self.root, recursive=True)
        write_atomically(self.fs, self.fs_path(self.plan_uri), write)

    def write_file(self, uri: str, data: bytes) -> None:
        """Write the run's file ``uri`` (its folder made first), atomically."""
        path = self.fs_path(uri)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        write_atomically(self.fs, path, lambda stream: stream.write(data))

    def read_file(self, uri: str) -> bytes | None:
        """The run's file ``uri``, or None if the run has no such file."""
        path = self.fs_path(uri)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def claim(self, session: str) -> None:
        """Mark ``session`` as the one driver session allowed to write results (see ``owned_by``)."""
        self.write_file(self.session_uri, session.encode())

    def owned_by(self, session: str) -> bool:
        """False once a newer driver session (a resume) has claimed the run: a leftover worker of the old
        session must then stop rather than write a second result for an item."""
        with self.fs.open_input_stream(self.fs_path(self.session_uri)) as stream:
            return stream.read().decode() == session

    def run_info(self) -> dict:
        """run.json, parsed afresh for each caller (who may change theirs); read once, as nothing rewrites it
        after submission. A folder without one is said not to be a run, in a sentence (``status`` of a wrong
        folder)."""
        raw = self._run_json
        if raw is None:
            raw = self.read_file(self.run_json_uri)
            if raw is None:
                raise NotARun(
                    f"{self.uri} is not a run folder (it has no run.json): give a folder that a render wrote (--out)."
                )
            object.__setattr__(self, "_run_json", raw)
        return json.loads(raw)

    def plan_table(self, columns: list[str] | None = None) -> pa.Table:
        """The plan as stored (only ``columns`` when given)."""
        with self.fs.open_input_file(self.fs_path(self.plan_uri)) as f:
            return pq.read_table(f, columns=columns)

    def plan_ids(self) -> list[str]:
        """The planned items' ids in plan order: what a summary needs, read without building 100,000 items."""
        return self.plan_table(["id"]).column("id").to_pylist()

    def plan(self, only: Collection[str] | None = None) -> list[PlannedItem]:
        """The plan (only the items of ``only`` when given); a run recorded before a setting existed keeps the
        semantics it started with (run.json)."""
        info = self.run_info()
        table = self.plan_table()
        if only is not None:
            table = table.filter(pc.field("id").isin(pa.array(list(only), pa.string())))
        return plan_from_table(table, {k: info[k] for k in HASHED_WHEN_SET if k in info})


def _checked(item_id: str) -> str:
    """An item id fit for a file name. Ids were validated; refuse anything that could leave the folder."""
    problem = id_problem(item_id)
    if problem:
        raise ValueError(f"item id {problem}")
    return item_id
