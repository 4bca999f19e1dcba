"""Each item's latest attempt, as the rows that ``--where`` filters: ``promote``, ``retry-weak`` and
``status --weakest`` select from the same rows, so an expression means the same everywhere.

A row is the results table's (revisions applied, ``read_results``) with the quality scores as top-level
columns: ``--where 'status == "ok" and lipsync_confidence > 0.8'`` picks the drafts worth a final render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from quality.score_fields import SCORE_NAMES
from runstore.compute import pc
from runstore.plan import PlannedItem
from runstore.results import INVALID_INPUT, RESULT_SCHEMA, latest_attempts, read_results
from runstore.run_folder import RunFolder
from runstore.where import row_filter

# Every column a --where can name: the results table's, the scores by their own names (a long item's too:
# ``worst_seam > 2``), the boundary of its worst seam, and why scores are missing.
COLUMNS = (*(n for n in RESULT_SCHEMA.names if n != "quality"), *SCORE_NAMES, "worst_seam_frame", "quality_reason")


def latest_table(planned_ids: Sequence[str], attempts: pa.Table, invalid_ids: Sequence[str] = ()) -> pa.Table:
    """The latest attempt's row of each item of ``planned_ids`` and of the set-aside ``invalid_ids`` that has one,
    in their order (the set-aside first); ``attempts`` needs ``item_id``, ``error_type``, ``finished_at`` and
    ``attempt`` of ``read_results``' columns. A planned item's InvalidInput rows date from before it was fixed
    and joined the plan: not attempts."""
    planned = pa.array(planned_ids, type=pa.string())  # typed: a plan with no items is still a plan
    if attempts.num_rows:
        invalid_input = pc.fill_null(pc.equal(attempts.column("error_type"), INVALID_INPUT), False)
        attempts = attempts.filter(pc.invert(pc.and_(pc.is_in(attempts.column("item_id"), planned), invalid_input)))
    latest = latest_attempts(attempts)
    order = pa.concat_arrays([pa.array(invalid_ids, type=pa.string()), planned])
    return latest.take(pc.index_in(order, value_set=latest.column("item_id")).drop_null())


def latest_by_item(
    planned: list[PlannedItem], attempts: pa.Table, invalid_ids: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Item id -> its latest attempt's row (``latest_table``), for the items of ``planned`` and ``invalid_ids``."""
    return {r["item_id"]: r for r in latest_table([p.id for p in planned], attempts, invalid_ids).to_pylist()}


def flat(row: dict) -> dict:
    """A result row with its scores as top-level columns (None when not scored); a long item's per-window
    scores and seams ride along as ``quality_windows`` and ``quality_seams``."""
    quality = row.get("quality") or {}
    out = {k: v for k, v in row.items() if k != "quality"}
    out.update({name: quality.get(name) for name in (*SCORE_NAMES, "worst_seam_frame")})
    out.update(quality_reason=quality.get("reason"), quality_windows=quality.get("windows"))
    out["quality_seams"] = quality.get("seams")
    return out


def latest_rows(run: RunFolder, planned_ids: Sequence[str] | None = None) -> list[dict]:
    """Flat rows of the planned items that have an attempt, in plan order (``planned_ids``: the run's plan's ids,
    when the caller has read them already)."""
    ids = run.plan_ids() if planned_ids is None else planned_ids
    return [flat(row) for row in latest_table(ids, read_results(run.results_uri)).to_pylist()]


def where_filter(where: str) -> Callable[[dict], bool]:
    """``where`` compiled over these rows' columns (``runstore.where``; it raises on an unknown column)."""
    return row_filter(where, COLUMNS)


def matching_rows(run: RunFolder, keep: Callable[[dict], bool], planned_ids: Sequence[str] | None = None) -> list[dict]:
    """The latest rows that ``keep`` (a ``where_filter``) keeps."""
    return [row for row in latest_rows(run, planned_ids) if keep(row)]
