"""The run folder: what was submitted, the resolved plan, outputs and results, all under one root.

RUN/submitted/   the manifest exactly as submitted (and its Parquet defaults file)
RUN/plan.parquet the resolved plan with fingerprints; resume reads this, not the source manifest
RUN/run.json     who submitted what: CLI arguments, code version, bundle identity, run id, and the semantics
                 its items render with where a later version changed them (``frozen_audio_sigma``)
RUN/videos/      one mp4 per item, named <id>.mp4
RUN/results/     the results dataset
RUN/ltx-batch-run   the marker, written first: a folder without it that holds files is not ours to write into
RUN/lease.json   the driver that holds the run (runstore/claim.py)
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from manifests.item import Item, id_problem
from runstore.plan import HASHED_WHEN_SET, PLAN_SCHEMA, PlannedItem, plan_from_table, plan_table
from storage.fs import filesystem, write_atomically, write_bytes

MARKER = "ltx-batch-run"
PLAN_ROWS = 10_000  # rows of plan.parquet made and written at a time: a big plan is never one table in memory


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
    uri: str
    fs: pafs.FileSystem = field(init=False)
    root: str = field(init=False)

    def __post_init__(self):
        fs, root = filesystem(self.uri)
        object.__setattr__(self, "fs", fs)
        object.__setattr__(self, "root", root.rstrip("/"))

    def _join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def results_uri(self) -> str:
        return self._sub_uri("results")

    def _sub_uri(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def video_uri(self, item_id: str) -> str:
        """Where an item's mp4 goes. Ids were validated; refuse anything that could leave the folder."""
        problem = id_problem(item_id)
        if problem:
            raise ValueError(f"item id {problem}")
        return self._sub_uri(f"videos/{item_id}.mp4")

    def exists(self) -> bool:
        from pyarrow.fs import FileType

        return self.fs.get_file_info(self._join("plan.parquet")).type == FileType.File

    def foreign_files(self) -> list[str]:
        """Files in the folder when it is neither absent, empty, nor one of our runs (marker or plan)."""
        from pyarrow.fs import FileSelector, FileType

        info = self.fs.get_file_info(self.root)
        if info.type == FileType.NotFound or self.exists():
            return []
        if info.type == FileType.File:
            return [self.root]
        if self.fs.get_file_info(self._join(MARKER)).type == FileType.File:
            return []
        found = self.fs.get_file_info(FileSelector(self.root, recursive=True))
        names = (i.path[len(self.root) + 1 :] for i in found if i.type == FileType.File)
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
        self._write_bytes(MARKER, b"ltx-batch run folder\n")

    def _write_bytes(self, name: str, data: bytes) -> None:
        write_bytes(self._sub_uri(name), data)

    def record_submission(
        self, manifest_files: list[Path], planned: list[PlannedItem], details: dict, run_id: str | None = None
    ) -> str:
        """Save the manifest copy, the plan and run.json; return the run id: ``run_id`` (made before planning, so
        that workers start meanwhile) or a new one."""
        run_id = run_id or new_run_id()
        for path in manifest_files:
            self._write_bytes(f"submitted/{path.name}", path.read_bytes())
        self.record_plan(planned)
        info = {
            "run_id": run_id,
            "submitted_at": datetime.now(UTC).isoformat(),
            "code_version": code_version(),
            "frozen_audio_sigma": Item.model_fields["frozen_audio_sigma"].default,  # what items not setting it get
            **details,
        }
        self._write_bytes("run.json", json.dumps(info, indent=1, default=str).encode())
        self.fs.create_dir(self._join("videos"), recursive=True)
        return run_id

    def record_plan(self, planned: list[PlannedItem]) -> None:
        """Write the plan: at submission, and when a resume adds set-aside items that now pass validation. It is
        made and written ``PLAN_ROWS`` rows at a time, into place once whole."""

        def write(stream) -> None:
            with pq.ParquetWriter(stream, PLAN_SCHEMA) as writer:
                for start in range(0, len(planned), PLAN_ROWS):
                    writer.write_table(plan_table(planned[start : start + PLAN_ROWS]))

        self.fs.create_dir(self.root, recursive=True)
        write_atomically(self.fs, self._join("plan.parquet"), write)

    def write_file(self, name: str, data: bytes) -> None:
        """Write ``RUN/name`` atomically."""
        self._write_bytes(name, data)

    def read_file(self, name: str) -> bytes | None:
        """``RUN/name``, or None if the run has no such file."""
        from pyarrow.fs import FileType

        if self.fs.get_file_info(self._join(name)).type != FileType.File:
            return None
        with self.fs.open_input_stream(self._join(name)) as stream:
            return stream.read()

    def claim(self, session: str) -> None:
        """Mark ``session`` as the one driver session allowed to write results (see ``owned_by``)."""
        self._write_bytes("session", session.encode())

    def owned_by(self, session: str) -> bool:
        """False once a newer driver session (a resume) has claimed the run: a leftover worker of the old
        session must then stop rather than write a second result for an item."""
        with self.fs.open_input_stream(self._join("session")) as stream:
            return stream.read().decode() == session

    def run_info(self) -> dict:
        with self.fs.open_input_stream(self._join("run.json")) as stream:
            return json.loads(stream.read())

    def plan(self) -> list[PlannedItem]:
        """The plan; a run recorded before a setting existed keeps the semantics it started with (run.json)."""
        info = self.run_info()
        with self.fs.open_input_file(self._join("plan.parquet")) as f:
            return plan_from_table(pq.read_table(f), {k: info[k] for k in HASHED_WHEN_SET if k in info})
