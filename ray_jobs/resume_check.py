"""A resume that says what it does: what changed since submission (``runstore.resume_changes``), then a refusal
listing it, or the choice the person made: ``--replan`` or ``--keep-plan``.
"""

from __future__ import annotations

from dataclasses import replace

from manifests.load import Manifest, ManifestError, load_manifest, set_overrides
from manifests.model_section import Model
from manifests.validate import check, report
from ray_jobs.summary import invalid_ids
from runstore.plan import PlannedItem, plan, refresh_fingerprints
from runstore.results import done_fingerprints, read_results
from runstore.resume_changes import (
    Changes,
    bundle_changes,
    bundle_digests,
    input_changes,
    item_changes,
    kept,
    replanned,
)
from runstore.run_folder import RunFolder
from storage.fs import exists

KEEP_PLAN = "keep-plan"


def _recorded_items(info: dict) -> tuple[str | None, list[str]]:
    """The run's ``--defaults`` file and ``--set`` pairs, as run.json recorded them."""
    items = info.get("options", {}).get("items")
    if items is not None:
        return items.get("defaults"), list(items.get("overrides") or ())
    args = info.get("args", {})
    return args.get("defaults"), list(args.get("set") or ())


def current_manifest(info: dict, given: str | None) -> tuple[Manifest | None, str | None]:
    """The manifest to compare (the one given, else the submitted path while it is there), or a note why none."""
    path = given or (None if "promoted_from" in info else info.get("manifest"))
    if not path:
        return None, None
    if not given and not exists(path):
        return None, f"the submitted manifest {path} is gone: the bundle and input files are compared, not the items"
    defaults, pairs = _recorded_items(info)
    if defaults and not exists(defaults):
        return None, f"the run's --defaults {defaults} is gone: the items of {path} are not compared"
    return load_manifest(path, defaults, set_overrides(pairs)), None


def changes_since_submission(run: RunFolder, model: Model, manifest: Manifest | None) -> Changes:
    info, planned = run.run_info(), run.plan()
    changes = item_changes(planned, manifest, invalid_ids(run)) if manifest else Changes(None)
    recorded_digests = info.get("bundle_digests")
    digests = bundle_digests(model.paths) if recorded_digests else {}
    bundle = bundle_changes(info["bundle"], model.identity, recorded_digests, digests)
    done = done_fingerprints(read_results(run.results_uri))
    inputs = input_changes(refresh_fingerprints(planned, info["bundle"]), done)
    return replace(changes, bundle=bundle, inputs=inputs)


def kept_plan(run: RunFolder) -> list[PlannedItem]:
    """The plan ``--keep-plan`` renders: the submitted bundle's fingerprints, finished items finished."""
    planned = refresh_fingerprints(run.plan(), run.run_info()["bundle"])
    return kept(planned, done_fingerprints(read_results(run.results_uri)))


def settle_resume(
    run: RunFolder, model: Model, choice: str | None, given: str | None, max_tokens: int, model_section: dict
) -> bool:
    """Compare, then refuse (``ManifestError``) or apply ``choice``. True: fingerprints follow the files as they
    are now (unchanged, or ``--replan``); False: render ``kept_plan`` (``--keep-plan``)."""
    manifest, note = current_manifest(run.run_info(), given)
    if note:
        print(f"note: {note}")
    changes = changes_since_submission(run, model, manifest)
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
        _replan(run, model, manifest, changes, max_tokens, model_section)
    print("\n  ".join(["--replan: rendering with these changes:", *lines]))
    if changes.removed:
        print(f"  removed from the plan (their clips and rows stay in the folder): {', '.join(changes.removed)}")
    if changes.bundle:
        print("  the bundle changed: every item renders again (a fingerprint holds the bundle's identity)")
    return True


def _replan(run: RunFolder, model: Model, manifest: Manifest, changes: Changes, max_tokens: int, section: dict):
    """Validate the edited and added items of ``manifest`` and write the plan with them (nothing on a problem)."""
    wanted = {*changes.added, *changes.edited}
    changed = replace(manifest, model=section, entries=[e for e in manifest.entries if e.data.get("id") in wanted])
    if changed.entries:
        problems = check(changed, max_tokens, model.transformer)[0]
        if problems:
            raise ManifestError(f"--replan: nothing was changed or rendered.\n{report(problems, changed)}")
    fresh = {p.id: p for p in plan(changed, model.identity)}
    run.record_plan(replanned(run.plan(), changes, fresh))
