"""What a render session works from, settled from its options before Ray starts; and a new run's manifest
validated and planned, as ``ltx-batch render`` records it and ``ltx-batch prepare`` warms up for it.

A new run reads its manifest once, with the command line's items and model over its own; a resume reads its
``run.json``. Either way the model section, quantization and transformer are known here, so a render that names
no model is refused in a line before any cluster is joined or started. Only a quantization that neither the
command line nor the manifest (or the run) gives waits for the cluster: what its devices compute best.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltxcore.errors import BundleError
from ltxcore.token_bound import MAX_TOKENS
from manifests.load import Manifest, ManifestError, ManifestSource
from manifests.media_facts import MediaFacts
from manifests.model_section import Model, resolve_model
from manifests.problems import warning_lines
from manifests.validate import check, report
from ray_jobs.run_options import RunOptions, recorded_options
from runstore import invalid
from runstore.invalid import InvalidItems
from runstore.plan import PlannedItem, plan
from runstore.run_folder import new_run_id
from storage.fs import StorageError


class Submission:
    """The run a session renders: its id, its model as named (a local bundle is not opened yet), the token bound
    of its validation, and a new run's manifest (None on a resume, which renders the plan it has)."""

    run_id: str
    section: dict  # the model section: the manifest's (or the run's) with the command line's bundle and files
    quantization: str | None  # given, else the manifest's (a resume: the run's); None: the cluster's best
    transformer: str
    max_tokens: int
    manifest: Manifest | None

    def __init__(self, options: RunOptions, info: dict | None = None):
        """A new run of ``options.manifest``, refused when it names no model; or, given its ``run.json`` as
        ``info``, the run it records, with the command line's model over the run's."""
        given, items = options.model, options.items
        if info is None:
            assert options.manifest is not None, "a new run has a manifest"
            self.manifest = ManifestSource(options.manifest, items.defaults, items.overrides, given).read()
            self.run_id, self.section = new_run_id(), self.manifest.model
            if not self.section:
                name = self.manifest.source or self.manifest.path
                raise ManifestError(
                    f"no model given: {name} has no model: section (a Parquet manifest takes it from --defaults or "
                    "the .yaml beside it); add one with bundle: FOLDER, or pass --bundle FOLDER."
                )
            recorded, transformer, max_tokens = self.section.get("quantization"), "dev", None
        else:
            self.manifest, self.run_id, self.section = None, info["run_id"], given.section(info["model"])
            recorded, transformer = info["bundle"]["quantization"], info.get("transformer", "dev")
            max_tokens = recorded_options(info).items.max_tokens
        self.quantization = given.quantization or recorded
        self.transformer = given.transformer or transformer
        self.max_tokens = items.max_tokens or max_tokens or MAX_TOKENS

    def model(self, cluster_quantization: str) -> Model | Exception:
        """The model, opened before validation so that workers load it meanwhile; or the error opening it met,
        for the caller to raise after validation's problems, which come first."""
        try:
            return resolve_model(self.section, self.quantization or cluster_quantization, self.transformer)
        except (BundleError, StorageError) as e:
            return e


@dataclass(frozen=True)
class NewRun:
    """A new run, validated and planned: its model, its manifest (without the set-aside entries), those entries
    (``--skip-invalid``; None when none were set aside) and its plan."""

    model: Model
    manifest: Manifest
    set_aside: InvalidItems | None
    planned: list[PlannedItem]


def checked_plan(submission: Submission, model: Model | Exception, skip_invalid: bool) -> NewRun:
    """Validate the new run's manifest (its warnings printed) and plan it. Its problems refuse the run, or with
    ``skip_invalid`` set its invalid items aside; then the error ``model`` met, if any, refuses it."""
    manifest = submission.manifest
    assert manifest is not None, "a new run has a manifest"
    facts = MediaFacts()  # each distinct media file is read once, for validation and the plan
    problems, warnings = check(manifest, submission.max_tokens, submission.transformer, facts)
    if warnings:
        print("\n".join(warning_lines(warnings)))
    set_aside = None
    if problems and skip_invalid:  # the run goes on without the invalid items, unless the manifest is at fault
        manifest, set_aside, problems = invalid.set_aside(manifest, problems)
    if problems:
        raise ManifestError(report(problems, manifest, warnings))
    if isinstance(model, Exception):
        raise model
    return NewRun(model, manifest, set_aside, plan(manifest, model.identity, facts))
