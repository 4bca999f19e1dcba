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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from manifests.problems import without_particulars
from ray_jobs.progress import duration
from runstore import invalid
from runstore.compute import pc
from runstore.latest import latest_table
from runstore.results import INVALID_INPUT, error_summary, read_results
from runstore.run_folder import RunFolder

GROUP_MESSAGE_CHARS = 160
FAILURE_GROUPS = 10  # failure groups ``ltx-batch status`` lists one by one
# What a summary reads of the results table (a run of 100,000 items reads much faster without the rest).
SUMMARY_COLUMNS = (
    "item_id",
    "attempt",
    "status",
    "error_type",
    "error_message",
    "started_at",
    "finished_at",
    "quality",
)


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
        """Failures grouped by error type and kind of message (its first line without the paths, names and numbers
        that differ from item to item), the most common first; each group says its first message."""
        groups: dict[tuple[str, str], list[str]] = {}
        first: dict[tuple[str, str], str] = {}
        for f in self.failures:
            first_line = (f.message.splitlines() or [""])[0][:GROUP_MESSAGE_CHARS]
            key = (f.error_type, without_particulars(first_line))
            groups.setdefault(key, []).append(f.item_id)
            first.setdefault(key, first_line)
        # invalid inputs first, then the most common; stable: first seen first among equals
        ranked = sorted(groups.items(), key=lambda kv: (kv[0][0] != INVALID_INPUT, -len(kv[1])))
        return [FailureGroup(key[0], first[key], tuple(ids)) for key, ids in ranked]

    def throughput_line(self) -> str | None:
        """``throughput: ...`` once there is a rate, else None."""
        rate = self.clips_per_hour
        if not self.ok or rate is None:
            return None
        return (
            f"throughput: {rate:.1f} clips/h over {duration(self.rendering_seconds)} of rendering "
            f"between {self.first_start:%Y-%m-%d %H:%M} and {self.last_end:%H:%M} UTC"
        )


def failure_lines(groups: list[FailureGroup]) -> list[str]:
    """A line per failure group (``FailureGroup``), the ``FAILURE_GROUPS`` most common; the rest on one line
    by error type (messages that name files make a group of every failure)."""
    lines = []
    for group in groups[:FAILURE_GROUPS]:
        examples = ", ".join(group.item_ids[:5])
        lines.append(f"  {len(group.item_ids)} x {group.error_type}: {group.message}  (e.g. {examples})")
    rest = groups[FAILURE_GROUPS:]
    if rest:
        kinds: Counter[str] = Counter()
        for group in rest:
            kinds[group.error_type] += len(group.item_ids)
        shown = ", ".join(f"{count} x {kind}" for kind, count in kinds.most_common(5))
        more = ", ..." if len(kinds) > 5 else ""
        lines.append(f"  and {len(rest)} more kinds of error ({kinds.total()} items: {shown}{more})")
    return lines


def rendering_seconds(spans: pa.Table) -> float:
    """Length of the union of the ``started_at``..``finished_at`` intervals of ``spans``: overlapping attempts
    count once, gaps not at all. In start order, each interval adds what reaches past every earlier one's end."""
    if spans.num_rows == 0:
        return 0.0
    spans = spans.sort_by([("started_at", "ascending")])
    start, end = (_micros(spans.column(name)) for name in ("started_at", "finished_at"))
    reach = pc.cumulative_max(end)
    before = pa.concat_arrays([start.slice(0, 1), reach.slice(0, len(reach) - 1)])  # the first adds from its start
    added = pc.max_element_wise(pc.subtract(reach, pc.max_element_wise(before, start)), 0)
    return pc.sum(added).as_py() / 1e6


def _micros(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks().cast(pa.int64())


def _timed(rows: pa.Table) -> pa.Table:
    """The rows with a start and a finish, not before it."""
    start, end = rows.column("started_at"), rows.column("finished_at")
    return rows.filter(pc.fill_null(pc.greater_equal(end, start), False))


def item_status(latest: dict | None) -> str:
    """``ok`` or ``failed`` from the latest attempt's row; ``pending`` when there is none."""
    return latest["status"] if latest else "pending"


def summarize(planned_ids: Sequence[str], attempts: pa.Table, invalid_ids: Sequence[str] = ()) -> RunSummary:
    """The summary of the items of ``planned_ids`` and the set-aside ``invalid_ids`` from every recorded attempt
    (``read_results``, at least its ``SUMMARY_COLUMNS``)."""
    order = [*invalid_ids, *planned_ids]
    latest = latest_table(planned_ids, attempts, invalid_ids)
    status = dict(zip(latest.column("item_id").to_pylist(), latest.column("status").to_pylist(), strict=True))
    failed = latest.filter(pc.equal(latest.column("status"), "failed"))
    failures = sorted(
        (
            Failure(r["item_id"], r["error_type"] or "error", error_summary(r["error_message"] or ""))
            for r in failed.select(["item_id", "error_type", "error_message"]).to_pylist()
        ),
        key=lambda f: f.error_type != INVALID_INPUT,
    )
    ids = pa.array(order, type=pa.string())
    spans = _timed(attempts.select(["item_id", "started_at", "finished_at"]))
    spans = spans.filter(pc.is_in(spans.column("item_id"), ids))
    worked = _timed(latest)
    worker = pc.sum(pc.subtract(_micros(worked.column("finished_at")), _micros(worked.column("started_at"))))
    ok = latest.filter(pc.equal(latest.column("status"), "ok"))
    return RunSummary(
        total=len(order),
        ok=sum(status.get(i) == "ok" for i in order),
        failures=tuple(failures),
        pending=tuple(i for i in order if i not in status),
        worker_seconds=(worker.as_py() or 0) / 1e6,
        rendering_seconds=rendering_seconds(spans),
        first_start=pc.min(spans.column("started_at")).as_py(),
        last_end=pc.max(spans.column("finished_at")).as_py(),
        unscored=ok.column("quality").null_count,
    )


def run_summary(run: RunFolder, planned_ids: Sequence[str] | None = None) -> RunSummary:
    """The summary of ``run`` (of its recorded plan unless ``planned_ids`` is given, and its set-aside items)."""
    attempts = read_results(run.results_uri, SUMMARY_COLUMNS)
    return summarize(run.plan_ids() if planned_ids is None else planned_ids, attempts, invalid_ids(run))


def invalid_ids(run: RunFolder) -> tuple[str, ...]:
    """The ids the rows of ``run``'s set-aside items carry (none unless it was started with --skip-invalid)."""
    set_aside = invalid.load(run)
    return tuple(s.item_id for s in set_aside.items) if set_aside else ()
