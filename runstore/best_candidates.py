"""A retry run's best candidates: ``retry.json`` says where its items came from and by which score they are
judged, and when the run's renders (or late scores) end, each item's best candidate is marked as a revision
of its rows. Here, below the commands, so rendering, scoring and the report use it without importing
``ltx-batch retry-weak``."""

from __future__ import annotations

import json
import uuid

from quality.score_fields import BY_NAME
from runstore.latest import latest_rows
from runstore.results import revise
from runstore.run_folder import RunFolder


def retry_info(run: RunFolder) -> dict | None:
    """A retry run's ``retry.json``; None for other runs."""
    raw = run.read_file(run.retry_uri)
    return None if raw is None else json.loads(raw)


def mark_best(run: RunFolder) -> list[str]:
    """In a retry run, mark each item's best candidate (a revision of the candidates' rows); return what was
    decided, one line per item. Nothing for other runs."""
    retry = retry_info(run)
    if retry is None:
        return []
    score = BY_NAME[retry["by"]]
    groups: dict[str, list[dict]] = {}
    for row in latest_rows(run):
        if row["retry_of"] is not None and row["status"] == "ok":
            groups.setdefault(row["retry_of"], []).append(row)
    revisions, lines = [], [f"best of each item by {score.name}:"]
    for origin, rows in groups.items():
        scored = sorted((r for r in rows if r[score.name] is not None), key=lambda r: score.weakness(r[score.name]))
        original = retry["originals"].get(origin, {}).get(score.name)
        winner = scored[0] if scored else None
        if (
            winner is not None
            and original is not None
            and score.weakness(original) <= score.weakness(winner[score.name])
        ):
            winner = None
        revisions += [{"item_id": r["item_id"], "output_sha256": r["output_sha256"], "best": r is winner} for r in rows]
        if winner is not None:
            lines.append(f"  {origin}: {winner['item_id']} ({score.name} {original} -> {winner[score.name]})")
        else:
            why = "no candidate has the score" if not scored else f"the original ({original}) is still the best"
            lines.append(f"  {origin}: none of {len(rows)} candidates marked: {why}")
    if revisions:
        revise(run.results_uri, revisions, f"best-{uuid.uuid4().hex[:8]}")
    return lines if groups else []
