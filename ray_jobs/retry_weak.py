"""``ltx-batch retry-weak``: re-render the weak clips of a run as best-of-N candidates in a new run, whose best
candidates are marked when it ends (``runstore.best_candidates``).

The new run is an ordinary run (resume, status and report work on it): its manifest, written to
``NEW/submitted/retry-weak.yaml``, holds the candidates (``runstore.retry_candidates``), and ``NEW/retry.json`` says
where they came from, the chosen score and each original clip's scores.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, replace

import yaml

from manifests.load import set_overrides
from quality.score_fields import SCORE_NAMES
from ray_jobs.run_options import RunOptions
from runstore.latest import matching_rows, where_filter
from runstore.retry_candidates import RetryError, candidates
from runstore.run_folder import RunFolder

MANIFEST = "retry-weak.yaml"  # in the new run's submitted/


@dataclass(frozen=True)
class Retry:
    """Which clips of ``run`` to re-render (``where``), how many new seeds each (``seeds``), and the score
    that picks the best candidate (``by``; default: the one ``where`` names)."""

    run: str
    where: str
    seeds: int = 0
    by: str | None = None


def score_in(expression: str) -> str | None:
    """The one score an expression names (the natural ``--by``), else None."""
    names = {node.id for node in ast.walk(ast.parse(expression, mode="eval")) if isinstance(node, ast.Name)}
    named = sorted(names & set(SCORE_NAMES))
    return named[0] if len(named) == 1 else None


def plan_retry(retry: Retry, source: RunFolder, out: str, overrides: dict) -> tuple[str, int]:
    """Write the new run's manifest and retry.json; return (manifest path, candidates planned). ``source`` is
    the run ``retry.run``."""
    keep = where_filter(retry.where)
    by = retry.by or score_in(retry.where)
    if by not in SCORE_NAMES:
        raise RetryError(f"--by must name the score that picks the best candidate, one of: {', '.join(SCORE_NAMES)}.")
    plan = source.plan()
    selected = matching_rows(source, keep, [p.id for p in plan])
    planned = {p.id: p for p in plan}
    entries = candidates([planned[row["item_id"]] for row in selected], retry.seeds, overrides)
    if not entries:
        return "", 0
    info, new = source.run_info(), RunFolder(out)
    new.mark()  # before the files below, so the render that follows knows the folder as ours
    manifest = new.submitted_uri(MANIFEST)
    new.write_file(manifest, yaml.safe_dump({"model": info["model"], "items": entries}, sort_keys=False).encode())
    originals = {
        row["item_id"]: {"output_uri": row["output_uri"], **{name: row[name] for name in SCORE_NAMES}}
        for row in selected
    }
    record = {"source": retry.run, "source_run_id": info["run_id"], "where": retry.where, "by": by}
    record.update({"seeds": retry.seeds, "set": overrides, "originals": originals})
    new.write_file(new.retry_uri, json.dumps(record, indent=1, default=str).encode())
    return manifest, len(entries)


def retry_weak(retry: Retry, options: RunOptions) -> int:
    """Plan the candidates into the new run ``options.out`` and render it with ``options``; the ``--set``
    overrides go into the candidates, and the run keeps the source run's quantization unless one is given."""
    from ray_jobs.render import run_render

    out, source = RunFolder(options.out), RunFolder(retry.run)
    if out.exists():
        raise RetryError(
            f"{options.out} already holds a run; pick a new --out (or resume it: ltx-batch resume {options.out})."
        )
    problem = out.foreign_problem()
    if problem:
        raise RetryError(problem)
    manifest, count = plan_retry(retry, source, options.out, set_overrides(list(options.items.overrides)))
    if not count:
        print(f"no item of {retry.run} matches --where {retry.where!r}; nothing to re-render")
        return 0
    print(f"{count} candidates for the items of {retry.run} where {retry.where}")
    quantization = options.model.quantization or source.run_info()["bundle"]["quantization"]
    return run_render(
        replace(
            options,
            manifest=manifest,
            model=replace(options.model, quantization=quantization),
            items=replace(options.items, overrides=()),
        )
    )
