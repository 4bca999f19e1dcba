"""The batch job: ``python -m ray_jobs.render MANIFEST --out RUN`` (or ``--resume RUN``).

Under ``ray job submit`` it joins the cluster it runs in; run directly, it starts a local Ray. The exit
code is 0 only when every item of the run has an ``ok`` result.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from pyarrow.fs import FileType

from ltxcore.checkpoint_header import transformer_layer_count
from ltxcore.errors import BundleError
from ltxcore.request import RenderRequest, pipeline_problem
from ltxcore.shapes import render_length
from manifests.load import ManifestError
from manifests.model_section import Model
from manifests.windows import plan_total
from ray_jobs.connect import ClusterError, connect
from ray_jobs.early_workers import EarlyWorkers
from ray_jobs.options import parse_render_argv
from ray_jobs.progress import Progress
from ray_jobs.resume_check import ResumeRequest, kept_plan, settle_resume
from ray_jobs.run_options import RunOptions, RunOptionsError, WorkerOptions
from ray_jobs.scheduler import NoWorkers, Scheduler
from ray_jobs.scratch import temporary_files_in_scratch
from ray_jobs.shards import make_shards
from ray_jobs.submission import NewRun, Submission, checked_plan
from ray_jobs.summary import run_summary
from runstore import invalid
from runstore.best_candidates import mark_best
from runstore.claim import Lease, RunTaken
from runstore.enhanced import recorded_enhancements
from runstore.plan import PlannedItem, refresh_fingerprints
from runstore.results import ok_count, read_results, still_to_render
from runstore.resume_changes import bundle_digests
from runstore.run_faults import RunFault
from runstore.run_folder import RunFolder
from runstore.window_store import units_of_work
from storage.fs import StorageError, is_uri

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_BAD_INPUT, EXIT_NO_WORKERS = 0, 1, 2, 3
EXIT_RUN_FAULT = 4  # the run folder's disk is full, read-only or over quota
EXIT_INTERRUPTED = 130  # Ctrl-C or ``ray job stop``, as a shell reports an interrupted command


def _stopped(signum: int, frame: object) -> None:
    """``ray job stop`` (SIGTERM) ends the driver as Ctrl-C does: finished items kept, one line said."""
    raise KeyboardInterrupt


def _device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"


# Ray's accelerator_type labels of cards with FP8 tensor cores (Ada, Hopper, Blackwell).
FP8_ACCELERATORS = ("H100", "H200", "H20", "H800", "GH200", "B100", "B200", "GB200", "L4", "L40", "L40S")


def default_quantization(device: str) -> str:
    """``fp8-scaled`` where the cluster's GPUs compute in FP8 (faster, and within 3e-2 of bf16 at full size;
    see BENCHMARKS.md), else ``fp8-cast`` on GPUs, ``none`` on CPUs."""
    if device != "cuda":
        return "none"
    labels = {k.removeprefix("accelerator_type:") for k in ray.cluster_resources() if k.startswith("accelerator_type:")}
    return "fp8-scaled" if labels and labels <= set(FP8_ACCELERATORS) else "fp8-cast"


def _prepare(
    options: RunOptions, run: RunFolder, submission: Submission, started: EarlyWorkers
) -> tuple[Model, list[PlannedItem] | None, bool]:
    """Start the workers on the run's model, then validate, plan and record a new run, or settle a resume; return
    (the model, a new run's plan, whether to render ``--keep-plan``'s). The workers load while the driver works."""
    model = submission.model(default_quantization(started.device))
    if isinstance(model, Model):
        started.start(model, submission.run_id)
    if submission.manifest is None:  # a resume
        _check_pipelines(run, options.out, submission.transformer)
        if isinstance(model, Exception):
            raise model
        return model, None, not _settle_resume(options, run, submission, model)
    new = checked_plan(submission, model, options.items.skip_invalid)
    _record(options, run, submission, new)
    return new.model, new.planned, False


def _check_pipelines(run: RunFolder, out: str, transformer: str) -> None:
    """Refuse a resume whose planned items need another transformer than the one this session loads (given
    with ``--transformer``, else the run's)."""
    problems = [
        f"item {p.id!r}, field 'pipeline': {problem}"
        for p in run.plan()
        if (problem := pipeline_problem(p.item.pipeline, transformer))
    ]
    if problems:
        raise ManifestError("\n  ".join([f"{out} cannot resume with this model:", *problems]))


def _record(options: RunOptions, run: RunFolder, submission: Submission, new: NewRun) -> None:
    """Write the new run: its set-aside items, then the submitted files, the plan and ``run.json``."""
    manifest, planned, set_aside = new.manifest, new.planned, new.set_aside
    print(f"plan: {plan_total([(p.item, p.window_plan) for p in planned])} (estimated)")
    sidecars = (options.items.defaults, manifest.path.with_suffix(".yaml"))
    files = [manifest.path, *(Path(p) for p in sidecars if p and Path(p).is_file())]
    details = {
        "argv": sys.argv,
        "options": options.record(),
        "model": manifest.model,
        "bundle": new.model.identity,
        "bundle_digests": bundle_digests(new.model.paths),  # what a resume compares (runstore.resume_changes)
        "transformer": submission.transformer,
        "manifest": manifest.source,
        "items": len(planned) + (len(set_aside.items) if set_aside else 0),
    }
    if set_aside:  # before the plan, which makes the folder a run: a run never lacks its set-aside items
        invalid.save(run, set_aside)
    run.record_submission(list(dict.fromkeys(files)), planned, details, submission.run_id)


def main(argv: list[str] | None = None) -> int:
    options = parse_render_argv(argv)
    with temporary_files_in_scratch():
        return run_render(options)


def run_render(options: RunOptions) -> int:
    """Render (or, with ``options.resume``, resume) a run; return the exit code. Interrupted (Ctrl-C, ``ray job
    stop``), it says in one line what was kept and how to go on."""
    run = RunFolder(options.out)
    try:
        return _run_render(options, run)
    except KeyboardInterrupt:
        print(f"\n{interrupted_line(run)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def interrupted_line(run: RunFolder) -> str:
    """What an interrupted driver kept: the run and its finished items (resume renders the rest), or nothing
    when it was stopped before its plan was written."""
    if not run.exists():
        return "interrupted before the run was planned: nothing was kept; start it again with the same command."
    ok = ok_count(run.results_uri)
    return f"interrupted: {run.uri} keeps its plan and {ok} finished item(s); go on with: ltx-batch resume {run.uri}"


def _run_render(options: RunOptions, run: RunFolder) -> int:
    lease = Lease(run)
    started_absent = not options.resume and run.fs.get_file_info(run.root).type == FileType.NotFound
    try:
        _take(options, run, lease)
    except (ManifestError, StorageError, RunTaken) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _render_held(options, run, lease.token)
    finally:
        lease.release()
        if started_absent and not run.exists():  # refused before its plan: leave no folder behind
            run.fs.delete_dir(run.root)


def _take(options: RunOptions, run: RunFolder, lease: Lease) -> None:
    """Refuse a folder that is not ours before writing anything, then take the run (``runstore.claim``)."""
    if options.resume:
        if not run.exists():
            raise ManifestError(f"{options.out} is not a run folder (no plan.parquet); start it with MANIFEST --out.")
        if options.items.overrides or options.items.defaults or options.items.skip_invalid:
            raise ManifestError(
                f"--set, --draft, --defaults and --skip-invalid do not apply to a resume: {options.out} renders its "
                "submitted plan (and validates its set-aside items again). To change items, edit the manifest and "
                "resume with --replan, or start a new run with MANIFEST --out NEW_RUN."
            )
    else:
        if options.resume_with.choice:
            raise ManifestError("--replan and --keep-plan apply to a resume only (ltx-batch resume RUN).")
        problem = run.foreign_problem()
        if problem:
            raise ManifestError(problem)
        run.mark()
    lease.acquire(take_over=options.workers.take_over)


def _render_held(options: RunOptions, run: RunFolder, session: str) -> int:
    try:  # what the run renders, read before Ray starts: a refusal costs no cluster
        if not options.resume and run.exists():  # asked under the lease: another driver may have planned it since
            raise ManifestError(f"{options.out} already holds a run; use --resume {options.out} or pick a new --out.")
        submission = Submission(options, run.run_info() if options.resume else None)
    except (ManifestError, StorageError, RunOptionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        connect(options.workers.address, options.workers.local_cpus, _stopped)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NO_WORKERS
    device = _device(options.workers.device)
    started = EarlyWorkers(device, options.workers, run.uri, session)
    try:
        try:
            model, planned, keep_plan = _prepare(options, run, submission, started)
        except (ManifestError, BundleError, StorageError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        run_id, max_tokens = submission.run_id, submission.max_tokens
        del submission  # a new run's manifest is planned: its entries go before the render
        held = HeldRun(run, run_id, session, model, device, options.workers, max_tokens, keep_plan, planned)
        return _render_prepared(held, started)
    finally:
        started.kill()  # those the run had no use for, or all when it was refused, failed or interrupted


@dataclass(frozen=True)
class HeldRun:
    """A run this driver session holds, prepared: what settling, rendering and the summary work from."""

    run: RunFolder
    run_id: str
    session: str
    model: Model
    device: str
    workers: WorkerOptions
    max_tokens: int  # the token bound of this session's validation
    keep_plan: bool = False  # ``--keep-plan``: render ``resume_check.kept_plan``
    planned: list[PlannedItem] | None = None  # a new run's plan as just written, fingerprints fresh; None: resume


def _settle_resume(options: RunOptions, run: RunFolder, submission: Submission, model: Model) -> bool:
    """What changed since submission, refused or applied (``ray_jobs.resume_check``); False: ``--keep-plan``."""
    with_ = options.resume_with
    request = ResumeRequest(model, with_.choice, with_.manifest, submission.max_tokens, submission.section)
    return settle_resume(run, request)


def _render_prepared(held: HeldRun, started: EarlyWorkers) -> int:
    run, run_id = held.run, held.run_id
    run.claim(held.session)  # before reading results: a leftover worker of an earlier session stops writing
    fixed, still_invalid = _settle_invalid(held)
    if held.keep_plan:
        planned = kept_plan(run)
    elif held.planned is not None and not fixed:  # not read back: the plan was written from these
        planned = held.planned
    else:
        planned = refresh_fingerprints(run.plan(), held.model.identity)
    pending = still_to_render(planned, run.results_uri)
    windows = {p.id: len(p.window_plan) for p in pending if len(p.window_plan) > 1}
    progress = Progress(total=len(pending), windows=windows)
    if fixed:
        progress.note(f"{fixed} item(s) set aside as invalid now pass validation and join the run")
    if still_invalid:
        progress.note(f"{still_invalid} invalid item(s) not rendered: each has an InvalidInput row (see below)")
    if pending:
        progress.note(f"run {run_id}: {len(pending)} of {len(planned)} items to render on {held.device}")
        enhanced = {}
        if any(p.item.enhance_prompt for p in pending):  # a resumed run reuses what earlier attempts wrote
            enhanced = recorded_enhancements(planned, read_results(run.results_uri))
        exit_code = _render(held, started, pending, progress, enhanced)
        if exit_code:
            return exit_code
    else:
        valid = "valid " if still_invalid else ""
        progress.note(f"run {run_id}: every {valid}item already has an ok result; nothing to render")
    for line in mark_best(run):  # a retry run's best candidates (runstore.best_candidates); nothing for other runs
        print(line)
    return _summary(run, planned)


def _settle_invalid(held: HeldRun) -> tuple[int, int]:
    """Validate the run's set-aside items (``--skip-invalid``) against this run's model and token bound."""
    run, model = held.run, held.model
    checkpoint = model.paths["checkpoint_path"]
    num_layers = None if is_uri(checkpoint) else transformer_layer_count(checkpoint)
    return invalid.settle(run, held.run_id, held.session, model.identity, num_layers, held.max_tokens)


def _render(held: HeldRun, started: EarlyWorkers, pending, progress, enhanced: dict) -> int:
    options, run = held.workers, held.run
    shards = make_shards(units_of_work(pending, run), options.shard_size, len(started.handles))
    warm = tuple(warm_requests(pending)) if held.device == "cuda" and options.compile else ()
    scheduler = Scheduler(
        started.take(len(shards)),
        shards,
        run.results_uri,
        held.run_id,
        held.session,
        progress,
        options.max_attempts,
        known=enhanced,
        warm_requests=warm,
    )
    try:
        scheduler.run()
    except NoWorkers as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NO_WORKERS
    except RunFault as fault:
        print(f"error: {fault.line(run.uri)}", file=sys.stderr)
        return EXIT_RUN_FAULT
    return 0


def warm_requests(pending) -> list[RenderRequest]:
    """A request of each graph set the run needs, so that no item meets an uncompiled graph: one per distinct
    (pipeline, frame size, LoRA set), at the length its windows render most, pipelines in the run's order and
    each one's most rendered graph set first. Compiled graphs serve every length (``ltxcore.blocks``): another
    length costs its first call a CUDA graph capture (about a second), not a compile. A worker compiles and
    warms them before its first item (their media are never read; their LoRAs are loaded)."""
    lengths: dict[tuple, Counter[int]] = {}  # graph set -> how many windows render each length
    first: dict[tuple, RenderRequest] = {}  # graph set -> its first item's request
    for planned in pending:
        request = planned.item.to_request()
        first.setdefault(_graphs(request), request)
        counted = lengths.setdefault(_graphs(request), Counter())
        counted.update(render_length(w.rendered) for w in planned.window_plan)  # older plans: today's lengths
    pipelines = list(dict.fromkeys(graphs[0] for graphs in lengths))
    order = sorted(lengths, key=lambda graphs: (pipelines.index(graphs[0]), -lengths[graphs].total()))
    return [replace(first[graphs], num_frames=lengths[graphs].most_common(1)[0][0]) for graphs in order]


def _graphs(request: RenderRequest) -> tuple:
    """What a compiled graph set is specialised to: the pipeline (its stage-1 batch), frame size and LoRA set."""
    loras = tuple(sorted({lora.path for lora in request.loras}))
    return request.pipeline, request.height, request.width, loras


def _summary(run: RunFolder, planned) -> int:
    summary = run_summary(run, [p.id for p in planned])
    not_ok = len(summary.failures) + len(summary.pending)
    lines = ["", f"{summary.ok} ok, {not_ok} not ok, {summary.total} items in the run"]
    lines += [f"  failed {f.item_id}: {f.error_type}: {f.message}".replace("\n", "\n    ") for f in summary.failures]
    lines += [f"  failed {item_id}: not rendered" for item_id in summary.pending]
    throughput = summary.throughput_line()
    lines += [throughput] if throughput else []
    if summary.unscored:
        lines.append(f"quality: {summary.unscored} ok clip(s) without scores; ltx-batch score {run.uri} --missing-only")
    lines += [
        f"outputs: {run.videos_uri}/",
        f"results: {run.results_uri}/ (Parquet, one row per attempt)",
        f"inspect: python -c \"import pandas as pd; print(pd.read_parquet('{run.results_uri}')"
        f"[['item_id','status','output_uri','seed']])\"",
    ]
    if not_ok:
        lines.append(f"resume: python -m ray_jobs.render --resume {run.uri}")
    if any(p.item.pipeline == "distilled" for p in planned):
        lines.append(
            f"drafts: pick the keepers in ltx-batch report {run.uri}; ltx-batch promote {run.uri} --out NEW_RUN "
            "[--only ID ...] [--exclude ID ...] plans their final renders"
        )
    print("\n".join(lines))
    return EXIT_OK if not not_ok else EXIT_FAILED_ITEMS


if __name__ == "__main__":
    sys.exit(main())
