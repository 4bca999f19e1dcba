"""One run summary, read from the plan and the results table: the end-of-run print, ``ltx-batch status``
and the HTML report all show this and nothing else.

An item's status is its latest attempt's (``ok`` or ``failed``), or ``pending`` while it has none. Items set
aside as invalid (``--skip-invalid``) count as items of the run and come first among the failures.

Clips per hour is the number of ok items over the hours in which at least one attempt was rendering:
the union of every attempt's [started_at, finished_at]. So the idle days between a run and its resume do
not dilute it, parallel workers are not double-counted (summed worker seconds would give the rate of one
worker), and the time spent on attempts that failed counts against it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from ray_jobs.progress import duration
from runstore import invalid
from runstore.latest import latest_by_item
from runstore.plan import PlannedItem
from runstore.results import INVALID_INPUT, error_summary, read_results
from runstore.run_folder import RunFolder

GROUP_MESSAGE_CHARS = 160


@dataclass(frozen=True)
class Failure:
    item_id: str
    error_type: str
    message: str  # without the traceback its row keeps (``runstore.results.error_text``)


@dataclass(frozen=True)
class FailureGroup:
    """Failed items that share an error type and the first line of their message."""

    error_type: str
    message: str
    item_ids: tuple[str, ...]


@dataclass(frozen=True)
class RunSummary:
    total: int
    ok: int
    failures: tuple[Failure, ...]  # invalid items first, then plan order
    pending: tuple[str, ...]  # ids without any attempt yet, plan order
    worker_seconds: float  # summed durations of each item's latest attempt
    rendering_seconds: float  # wall time in which at least one attempt was rendering
    first_start: datetime | None
    last_end: datetime | None
    unscored: int = 0  # ok items whose latest row has no quality record: still scoring, or their scores were lost

    @property
    def invalid(self) -> int:
        """Failed items whose input failed validation (``--skip-invalid``)."""
        return sum(f.error_type == INVALID_INPUT for f in self.failures)

    @property
    def counts(self) -> dict[str, int]:
        return {"ok": self.ok, "failed": len(self.failures), "pending": len(self.pending)}

    @property
    def clips_per_hour(self) -> float | None:
        """Ok clips per hour of rendering (see the module docstring); None before any rendering time."""
        return self.ok / self.rendering_seconds * 3600 if self.rendering_seconds > 0 else None

    @property
    def eta_hours(self) -> float | None:
        """Hours the pending items take at ``clips_per_hour``; None without a rate."""
        rate = self.clips_per_hour
        return len(self.pending) / rate if rate else None

    def failure_groups(self) -> list[FailureGroup]:
        """Failures grouped by error type and the first line of the message, the most common first."""
        groups: dict[tuple[str, str], list[str]] = {}
        for f in self.failures:
            first_line = (f.message.splitlines() or [""])[0][:GROUP_MESSAGE_CHARS]
            groups.setdefault((f.error_type, first_line), []).append(f.item_id)
        # invalid inputs first, then the most common; stable: first seen first among equals
        ranked = sorted(groups.items(), key=lambda kv: (kv[0][0] != INVALID_INPUT, -len(kv[1])))
        return [FailureGroup(kind, message, tuple(ids)) for (kind, message), ids in ranked]

    def throughput_line(self) -> str | None:
        """``throughput: ...`` once there is a rate, else None."""
        rate = self.clips_per_hour
        if not self.ok or rate is None:
            return None
        return (
            f"throughput: {rate:.1f} clips/h over {duration(self.rendering_seconds)} of rendering "
            f"between {self.first_start:%Y-%m-%d %H:%M} and {self.last_end:%H:%M} UTC"
        )


def rendering_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Length of the union of ``intervals``: overlapping attempts count once, gaps not at all."""
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def _timed(row: dict) -> bool:
    return row["started_at"] is not None and row["finished_at"] is not None and row["finished_at"] >= row["started_at"]


def item_status(latest: dict | None) -> str:
    """``ok`` or ``failed`` from the latest attempt's row; ``pending`` when there is none."""
    return latest["status"] if latest else "pending"


def summarize(planned: list[PlannedItem], attempts: pa.Table, invalid_ids: tuple[str, ...] = ()) -> RunSummary:
    """The summary of the items in ``planned`` and the set-aside ``invalid_ids`` from every recorded attempt
    (``read_results``)."""
    order = [*invalid_ids, *(p.id for p in planned)]
    ids = set(order)
    latest = latest_by_item(planned, attempts, invalid_ids)
    statuses = Counter(item_status(latest.get(i)) for i in order)
    failures = sorted(
        (
            Failure(i, latest[i]["error_type"] or "error", error_summary(latest[i]["error_message"] or ""))
            for i in order
            if item_status(latest.get(i)) == "failed"
        ),
        key=lambda f: f.error_type != INVALID_INPUT,
    )
    rows = attempts.select(["item_id", "started_at", "finished_at"]).to_pylist()
    spans = [(r["started_at"], r["finished_at"]) for r in rows if r["item_id"] in ids and _timed(r)]
    worker = sum((r["finished_at"] - r["started_at"]).total_seconds() for r in latest.values() if _timed(r))
    return RunSummary(
        total=len(order),
        ok=statuses["ok"],
        failures=tuple(failures),
        pending=tuple(i for i in order if item_status(latest.get(i)) == "pending"),
        worker_seconds=worker,
        rendering_seconds=rendering_seconds(spans),
        first_start=min((s for s, _ in spans), default=None),
        last_end=max((e for _, e in spans), default=None),
        unscored=sum(r["status"] == "ok" and r["quality"] is None for r in latest.values()),
    )


def run_summary(run: RunFolder, planned: list[PlannedItem] | None = None) -> RunSummary:
    """The summary of ``run`` (of its recorded plan unless ``planned`` is given, and its set-aside items)."""
    return summarize(run.plan() if planned is None else planned, read_results(run.results_uri), invalid_ids(run))


def invalid_ids(run: RunFolder) -> tuple[str, ...]:
    """The ids the rows of ``run``'s set-aside items carry (none unless it was started with --skip-invalid)."""
    set_aside = invalid.load(run)
    return tuple(s.item_id for s in set_aside.items) if set_aside else ()
