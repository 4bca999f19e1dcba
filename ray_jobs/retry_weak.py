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

import yaml

from manifests.load import set_overrides
from quality.score_fields import SCORE_NAMES
from runstore.best_candidates import INFO
from runstore.latest import matching_rows, where_filter
from runstore.retry_candidates import RetryError, candidates
from runstore.run_folder import RunFolder
from storage.fs import join, write_bytes

MANIFEST = "submitted/retry-weak.yaml"


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
    RunFolder(args.out).mark()  # before the files below, so the render that follows knows the folder as ours
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
    from ray_jobs.render import run_render

    if RunFolder(args.out).exists():
        raise RetryError(
            f"{args.out} already holds a run; pick a new --out (or resume it: ltx-batch resume {args.out})."
        )
    problem = RunFolder(args.out).foreign_problem()
    if problem:
        raise RetryError(problem)
    manifest, count = plan_retry(args, set_overrides(args.set))
    if not count:
        print(f"no item of {args.run} matches --where {args.where!r}; nothing to re-render")
        return 0
    print(f"{count} candidates for the items of {args.run} where {args.where}")
    quantization = args.quantization or RunFolder(args.run).run_info()["bundle"]["quantization"]
    options = {**vars(args), "manifest": manifest, "resume": None, "set": [], "quantization": quantization}
    return run_render(argparse.Namespace(**{k: v for k, v in options.items() if k not in ("handler", "debug")}))
