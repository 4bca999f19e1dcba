"""``ltx-batch retry-weak``: re-render the weak clips of a run as best-of-N candidates in a new run, and mark
each item's best candidate when that run ends.

The new run is an ordinary run (resume, status and report work on it): its manifest, written to
``NEW/submitted/retry-weak.yaml``, holds the candidates (``runstore.retry_candidates``), and ``NEW/retry.json`` says
where they came from, the chosen score and each original clip's scores. The best candidate of an item is
the one with the best value of that score; when the original clip scores better than every candidate, no
candidate is marked and the original stays the one to use.
"""

from __future__ import annotations

import argparse
import ast
import json
import uuid

import yaml

from quality.score_fields import BY_NAME, SCORE_NAMES
from runstore.latest import latest_rows, matching_rows, where_filter
from runstore.results import revise
from runstore.retry_candidates import RetryError, candidates
from runstore.run_folder import RunFolder
from storage.fs import exists, join, read_bytes, write_bytes

MANIFEST, INFO = "submitted/retry-weak.yaml", "retry.json"


def score_in(expression: str) -> str | None:
    """The one score an expression names (the natural ``--by``), else None."""
    names = {node.id for node in ast.walk(ast.parse(expression, mode="eval")) if isinstance(node, ast.Name)}
    named = sorted(names & set(SCORE_NAMES))
    return named[0] if len(named) == 1 else None


def plan_retry(args: argparse.Namespace, overrides: dict) -> tuple[str, int]:
    """Write the new run's manifest and retry.json; return (manifest path, candidates planned)."""
    keep = where_filter(args.where)
    by = args.by or score_in(args.where)
    if by not in SCORE_NAMES:
        raise RetryError(f"--by must name the score that picks the best candidate, one of: {', '.join(SCORE_NAMES)}.")
    source = RunFolder(args.run)
    plan = source.plan()
    selected = matching_rows(source, keep, plan)
    planned = {p.id: p for p in plan}
    entries = candidates([planned[row["item_id"]] for row in selected], args.seeds, overrides)
    if not entries:
        return "", 0
    info = source.run_info()
    manifest = join(args.out, MANIFEST)
    write_bytes(manifest, yaml.safe_dump({"model": info["model"], "items": entries}, sort_keys=False).encode())
    originals = {
        row["item_id"]: {"output_uri": row["output_uri"], **{name: row[name] for name in SCORE_NAMES}}
        for row in selected
    }
    retry = {"source": args.run, "source_run_id": info["run_id"], "where": args.where, "by": by, "seeds": args.seeds}
    retry.update({"set": overrides, "originals": originals})
    write_bytes(join(args.out, INFO), json.dumps(retry, indent=1, default=str).encode())
    return manifest, len(entries)


def retry_weak(args: argparse.Namespace) -> int:
    from ray_jobs.render import _overrides, run_render

    if RunFolder(args.out).exists():
        raise RetryError(
            f"{args.out} already holds a run; pick a new --out (or resume it: ltx-batch resume {args.out})."
        )
    manifest, count = plan_retry(args, _overrides(args.set))
    if not count:
        print(f"no item of {args.run} matches --where {args.where!r}; nothing to re-render")
        return 0
    print(f"{count} candidates for the items of {args.run} where {args.where}")
    quantization = args.quantization or RunFolder(args.run).run_info()["bundle"]["quantization"]
    options = {**vars(args), "manifest": manifest, "resume": None, "set": [], "quantization": quantization}
    return run_render(argparse.Namespace(**{k: v for k, v in options.items() if k not in ("handler", "debug")}))


def retry_info(run: RunFolder) -> dict | None:
    """A retry run's ``retry.json``; None for other runs."""
    return json.loads(read_bytes(join(run.uri, INFO))) if exists(join(run.uri, INFO)) else None


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
