"""A run's quality scores as plain rows and lines: flat rows for ``--where``, the weakest items per score for
``ltx-batch status``. Rows are each item's latest attempt with revisions applied (``read_results``)."""

from __future__ import annotations

from collections import Counter

from manifests.results import RESULT_SCHEMA, read_results
from manifests.run_folder import RunFolder
from quality.scores import BY_NAME, SCORE_NAMES
from ray_jobs.summary import latest_by_item

WEAKEST = 5
# Every column a --where can name: the results table's, the scores by their own names, and why they are missing.
COLUMNS = (*(n for n in RESULT_SCHEMA.names if n != "quality"), *SCORE_NAMES, "quality_reason")


def flat(row: dict) -> dict:
    """A result row with its scores as top-level columns (None when not scored)."""
    quality = row.get("quality") or {}
    out = {k: v for k, v in row.items() if k != "quality"}
    out.update({name: quality.get(name) for name in SCORE_NAMES})
    out["quality_reason"] = quality.get("reason")
    return out


def latest_rows(run: RunFolder) -> list[dict]:
    """Flat rows of the planned items that have an attempt, in plan order."""
    planned = run.plan()
    latest = latest_by_item(planned, read_results(run.results_uri))
    return [flat(latest[p.id]) for p in planned if p.id in latest]


def weakest(rows: list[dict], n: int = WEAKEST) -> dict[str, list[tuple[str, float]]]:
    """Per score, up to ``n`` (item id, value) of the ok items that have it, the weakest first."""
    out = {}
    for name in SCORE_NAMES:
        scored = [(r["item_id"], r[name]) for r in rows if r["status"] == "ok" and r[name] is not None]
        out[name] = sorted(scored, key=lambda pair: BY_NAME[name].weakness(pair[1]), reverse=True)[:n]
    return out


def _value(value: float) -> str:
    return f"{value:+d}" if isinstance(value, int) else f"{value:.3g}"


def quality_lines(rows: list[dict], n: int = WEAKEST) -> list[str]:
    """How many ok clips have scores, why the others have none, and the ``n`` weakest per score."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    unscored = [r for r in ok if all(r[name] is None for name in SCORE_NAMES if name != "face_found_fraction")]
    lines = [f"quality: {len(ok) - len(unscored)} of {len(ok)} ok clips scored"]
    missing = Counter(r["quality_reason"] or "not scored yet (ltx-batch score RUN)" for r in unscored)
    lines += [f"  {count} without scores: {reason}" for reason, count in missing.most_common()]
    unscored_ids = {r["item_id"] for r in unscored}
    for name, worst in weakest([r for r in ok if r["item_id"] not in unscored_ids], n).items():
        if worst:
            items = ", ".join(f"{item_id} {_value(value)}" for item_id, value in worst)
            lines.append(f"  weakest {name} ({BY_NAME[name].weak} is weak): {items}")
    return lines
