"""Promotion: chosen drafts of a run become a new run of final (two-stage) renders.

``ltx-batch promote RUN --out NEW_RUN [--only ID ...] [--exclude ID ...] [--where EXPR]`` writes NEW_RUN as
a run folder ready to resume, as ``ltx-batch render`` leaves one before its first item (``plan.parquet``,
``run.json``; there is no manifest to submit): the chosen items of RUN's plan with ``pipeline: two-stage``
and every other setting exactly as planned (seed, frame count, prompts, media, size, guider), each linked
to its draft by ``promoted_from``, on RUN's model with the dev transformer. ``ltx-batch resume NEW_RUN``
renders them; status, the report and later resumes treat it as any other run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from manifests.model_section import resolve_model
from runstore.latest import matching_rows, where_filter
from runstore.plan import PlannedItem, refresh_fingerprints
from runstore.run_folder import RunFolder
from storage.fs import local_or_uri


class PromoteError(ValueError):
    """The promotion cannot be written: no such run, unknown ids, nothing selected, an existing --out."""


@dataclass(frozen=True)
class Selection:
    """Which items of the draft run to promote: ``only`` these (all if empty), minus ``exclude``, and of those
    the ones whose latest row matches ``where`` (``runstore/latest.py``: result columns and quality scores; an
    item without a row never does)."""

    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    where: str | None = None


def select(draft: RunFolder, planned: list[PlannedItem], selection: Selection) -> list[PlannedItem]:
    """The planned items of ``draft`` that ``selection`` chooses, in plan order."""
    ids = [p.id for p in planned]
    unknown = [i for i in dict.fromkeys((*selection.only, *selection.exclude)) if i not in ids]
    if unknown:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise PromoteError(f"{draft.uri} has no item {', '.join(map(repr, unknown))}; its items are {shown}")
    chosen = [p for p in planned if (not selection.only or p.id in selection.only) and p.id not in selection.exclude]
    if selection.where:
        matching = {row["item_id"] for row in matching_rows(draft, where_filter(selection.where), ids)}
        chosen = [p for p in chosen if p.id in matching]
    if not chosen:
        raise PromoteError(f"nothing to promote: no item of {draft.uri} is selected by {_describe(selection)}.")
    return chosen


def promote(draft_uri: str, out_uri: str, selection: Selection, argv: list[str]) -> tuple[str, list[PlannedItem]]:
    """Write the promoted run at ``out_uri``; return its run id and its planned items."""
    draft, final = RunFolder(draft_uri), RunFolder(out_uri)
    if not draft.exists():
        raise PromoteError(f"{draft_uri} is not a run folder (no plan.parquet); promote a run that render wrote.")
    if final.exists():
        raise PromoteError(f"{out_uri} already holds a run; pick a new --out (ltx-batch resume {out_uri} renders it).")
    info = draft.run_info()
    chosen = select(draft, draft.plan(), selection)
    model = resolve_model(info["model"], info["bundle"]["quantization"])  # two-stage needs the dev transformer
    finals = [
        PlannedItem(
            p.item.model_copy(update={"pipeline": "two-stage"}),
            "",
            {"run_id": info["run_id"], "item_id": p.id},
            windows=p.windows,  # the draft's windows: the same audio, frames and window settings
        )
        for p in chosen
    ]
    finals = refresh_fingerprints(finals, model.identity)
    source = local_or_uri(draft_uri)
    details = {
        "argv": argv,
        "promoted_from": {"run_id": info["run_id"], "run": source, "selection": asdict(selection)},
        "model": info["model"],
        "bundle": model.identity,
        "transformer": model.transformer,
        "manifest": info.get("manifest"),
        "items": len(finals),
    }
    return final.record_submission([], finals, details), finals


def _describe(selection: Selection) -> str:
    parts = [f"--only {' '.join(selection.only)}"] if selection.only else []
    parts += [f"--exclude {' '.join(selection.exclude)}"] if selection.exclude else []
    parts += [f"--where {selection.where!r}"] if selection.where else []
    return " ".join(parts) or "the selection"
