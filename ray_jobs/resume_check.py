"""A resume that says what it does: what changed since submission (``runstore.resume_changes``), then a refusal
listing it, or the choice the person made: ``--replan`` or ``--keep-plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from manifests.load import Manifest, ManifestError
from manifests.model_section import Model
from manifests.validate import check, report
from ray_jobs.summary import invalid_ids
from runstore.plan import PlannedItem, plan, refresh_fingerprints
from runstore.results import done_fingerprints, read_results
from runstore.resume_changes import (
    Changes,
    bundle_changes_since,
    current_manifest,
    input_changes,
    item_changes,
    kept,
    replanned,
)
from runstore.run_folder import RunFolder

KEEP_PLAN = "keep-plan"


@dataclass(frozen=True)
class ResumeRequest:
    """What one resume is settled against: the person's choice and manifest, this session's model and bound."""

    model: Model
    choice: str | None  # ``replan``, ``keep-plan`` or None (refuse a changed run)
    manifest: str | None  # ``--manifest``; None compares the submitted one while it is there
    max_tokens: int
    model_section: dict  # the manifest's model section as this session resolved it (for ``--replan``)


def _changes(run: RunFolder, info: dict, manifest: Manifest | None, bundle: tuple[str, ...]) -> Changes:
    """Items (against ``manifest``), the bundle's ``bundle`` lines, and the finished items' input files."""
    planned = run.plan()
    changes = item_changes(planned, manifest, invalid_ids(run)) if manifest else Changes(None)
    done = done_fingerprints(read_results(run.results_uri))
    inputs = input_changes(refresh_fingerprints(planned, info["bundle"]), done)
    return replace(changes, bundle=bundle, inputs=inputs)


def kept_plan(run: RunFolder) -> list[PlannedItem]:
    """The plan ``--keep-plan`` renders: the submitted bundle's fingerprints, finished items finished."""
    planned = refresh_fingerprints(run.plan(), run.run_info()["bundle"])
    return kept(planned, done_fingerprints(read_results(run.results_uri)))


def settle_resume(run: RunFolder, request: ResumeRequest) -> bool:
    """Compare, then refuse (``ManifestError``) or apply the request's choice. True: fingerprints follow the files
    as they are now (unchanged, or ``--replan``); False: render ``kept_plan`` (``--keep-plan``)."""
    info = run.run_info()
    bundle = bundle_changes_since(info, request.model)
    manifest, note = current_manifest(info, request.manifest)
    if note:
        print(f"note: {note}")
    changes = _changes(run, info, manifest, bundle)
    choice = request.choice
    if not changes:
        if choice:
            print(f"--{choice}: nothing changed since {run.uri} was submitted; resuming its plan")
        return True
    lines = changes.lines()
    if choice is None:
        raise ManifestError(
            "\n  ".join(
                [
                    f"{run.uri} changed since it was submitted, so nothing was rendered:",
                    *lines,
                    "pass --replan to render these changes (edited and added items from the new manifest, removed "
                    "ones dropped, changed files re-render the items they touch), or --keep-plan to render the "
                    "submitted plan as it was, ignoring them.",
                ]
            )
        )
    if choice == KEEP_PLAN:
        print("\n  ".join(["--keep-plan: rendering the plan as submitted; ignored:", *lines]))
        return False
    if manifest is not None and (changes.added or changes.removed or changes.edited):
        wanted = {*changes.added, *changes.edited}  # validated, then planned with the submitted bundle's identity
        changed = replace(
            manifest, model=request.model_section, entries=[e for e in manifest.entries if e.data.get("id") in wanted]
        )
        problems = check(changed, request.max_tokens, request.model.transformer)[0] if changed.entries else []
        if problems:
            raise ManifestError(f"--replan: nothing was changed or rendered.\n{report(problems, changed)}")
        fresh = {p.id: p for p in plan(changed, info["bundle"])}  # fingerprints refresh to this bundle when rendered
        run.record_plan(replanned(run.plan(), changes, fresh))
    print("\n  ".join(["--replan: rendering with these changes:", *lines]))
    if changes.removed:
        print(f"  removed from the plan (their clips and rows stay in the folder): {', '.join(changes.removed)}")
    if changes.bundle:
        print("  the bundle changed: every item renders again (a fingerprint holds the bundle's identity)")
    return True
