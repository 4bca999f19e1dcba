"""Each item's latest attempt, as the rows that ``--where`` filters: ``promote``, ``retry-weak`` and
``status --weakest`` select from the same rows, so an expression means the same everywhere.

A row is the results table's (revisions applied, ``read_results``) with the quality scores as top-level
columns: ``--where 'status == "ok" and lipsync_confidence > 0.8'`` picks the drafts worth a final render.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from quality.score_fields import SCORE_NAMES
from runstore.plan import PlannedItem
from runstore.results import INVALID_INPUT, RESULT_SCHEMA, latest_attempts, read_results
from runstore.run_folder import RunFolder
from runstore.where import row_filter

# Every column a --where can name: the results table's, the scores by their own names (a long item's too:
# ``worst_seam > 2``), the boundary of its worst seam, and why scores are missing.
COLUMNS = (*(n for n in RESULT_SCHEMA.names if n != "quality"), *SCORE_NAMES, "worst_seam_frame", "quality_reason")


def latest_by_item(
    planned: list[PlannedItem], attempts: pa.Table, invalid_ids: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Item id -> its latest attempt's row, for the items of ``planned`` (and the set-aside ``invalid_ids``) that
    have one. A planned item's InvalidInput rows date from before it was fixed and joined the plan: not attempts."""
    ids = {p.id for p in planned}
    if attempts.num_rows:
        error_type = pc.field("error_type")
        planned_ids = pa.array(sorted(ids), type=pa.string())  # typed: a plan with no items is still a plan
        stale = pc.field("item_id").isin(planned_ids) & error_type.is_valid() & (error_type == INVALID_INPUT)
        attempts = attempts.filter(~stale)
    ids |= set(invalid_ids)
    return {r["item_id"]: r for r in latest_attempts(attempts).to_pylist() if r["item_id"] in ids}


def flat(row: dict) -> dict:
    """A result row with its scores as top-level columns (None when not scored); a long item's per-window
    scores and seams ride along as ``quality_windows`` and ``quality_seams``."""
    quality = row.get("quality") or {}
    out = {k: v for k, v in row.items() if k != "quality"}
    out.update({name: quality.get(name) for name in (*SCORE_NAMES, "worst_seam_frame")})
    out.update(quality_reason=quality.get("reason"), quality_windows=quality.get("windows"))
    out["quality_seams"] = quality.get("seams")
    return out


def latest_rows(run: RunFolder, planned: list[PlannedItem] | None = None) -> list[dict]:
    """Flat rows of the planned items that have an attempt, in plan order (``planned``: the run's plan, when
    the caller has read it already)."""
    planned = run.plan() if planned is None else planned
    latest = latest_by_item(planned, read_results(run.results_uri))
    return [flat(latest[p.id]) for p in planned if p.id in latest]


def where_filter(where: str) -> Callable[[dict], bool]:
    """``where`` compiled over these rows' columns (``runstore.where``; it raises on an unknown column)."""
    return row_filter(where, COLUMNS)


def matching_rows(run: RunFolder, keep: Callable[[dict], bool], planned: list[PlannedItem] | None = None) -> list[dict]:
    """The latest rows that ``keep`` (a ``where_filter``) keeps."""
    return [row for row in latest_rows(run, planned) if keep(row)]
