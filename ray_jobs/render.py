"""The batch job: ``python -m ray_jobs.render MANIFEST --out RUN`` (or ``--resume RUN``).

Under ``ray job submit`` it joins the cluster it runs in; run directly, it starts a local Ray. The exit
code is 0 only when every item of the run has an ``ok`` result.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import ray
from pyarrow.fs import FileType

from ltxcore.bundle import OPTIONAL_NAMES, RELEASED_NAMES
from ltxcore.checkpoint_header import transformer_layer_count
from ltxcore.errors import BundleError
from ltxcore.request import RenderRequest, pipeline_problem
from ltxcore.token_bound import MAX_TOKENS
from manifests.load import ManifestError, load_manifest, set_overrides
from manifests.model_section import Model, resolve_model
from manifests.validate import check, report, warning_lines
from ray_jobs import local_ray
from ray_jobs.actor import RenderActor
from ray_jobs.options import add_render_options, add_resume_options
from ray_jobs.progress import Progress
from ray_jobs.resume_check import KEEP_PLAN, REPLAN, kept_plan, settle_resume
from ray_jobs.scheduler import WORKER_OPTIONS, NoWorkers, Scheduler
from ray_jobs.shards import cache_key, make_shards
from ray_jobs.summary import run_summary
from runstore import invalid
from runstore.best_candidates import mark_best
from runstore.claim import Lease, RunTaken
from runstore.enhanced import recorded_enhancements
from runstore.plan import plan, refresh_fingerprints
from runstore.results import read_results, still_to_render
from runstore.resume_changes import bundle_digests
from runstore.run_folder import RunFolder
from runstore.window_store import units_of_work
from storage.fs import StorageError, is_uri

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_BAD_INPUT, EXIT_NO_WORKERS = 0, 1, 2, 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.render",
        description="Render every item of a manifest on a Ray cluster; resume a run with --resume RUN.",
        epilog="example: python -m ray_jobs.render lessons.yaml --out runs/lessons-0312 --bundle /models/ltx-2.3",
    )
    parser.add_argument(
        "manifest", nargs="?", help="a .yaml or .parquet manifest (with --resume: the edited manifest to compare)"
    )
    parser.add_argument("--out", help="run folder (local path or s3:// / gs:// URI)")
    parser.add_argument("--resume", metavar="RUN", help="resume RUN: render only the items without an ok result")
    add_render_options(parser)
    add_resume_options(parser)
    args = parser.parse_args(argv)
    if args.resume:
        args.out = args.out or args.resume
    elif not (args.manifest and args.out):
        parser.error("give MANIFEST --out RUN, or --resume RUN")
    return args


def _model_section(args: argparse.Namespace, base: dict) -> dict:
    model = dict(base)
    if args.bundle:
        model = {"bundle": args.bundle if is_uri(args.bundle) else str(Path(args.bundle).expanduser().resolve())}
    for name in {**RELEASED_NAMES, **OPTIONAL_NAMES}:
        if getattr(args, name):
            model[name] = getattr(args, name)
    return model


def _connect(args: argparse.Namespace) -> None:
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        local_ray.start(args.local_cpus)


def _device(args: argparse.Namespace) -> str:
    if args.device != "auto":
        return args.device
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


def _model(model_section: dict, args: argparse.Namespace, device: str, transformer: str) -> Model:
    if not model_section:
        raise ManifestError("no model given: add a model: section to the manifest or pass --bundle FOLDER.")
    quantization = args.quantization or model_section.get("quantization") or default_quantization(device)
    return resolve_model(model_section, quantization, transformer)


def _prepare(args: argparse.Namespace, run: RunFolder, device: str) -> tuple[Model, str]:
    """Create the run (validate, plan, record) or load it for resume; return (model, run id)."""
    if args.resume:
        if not run.exists():
            raise ManifestError(f"{args.resume} is not a run folder (no plan.parquet); start it with MANIFEST --out.")
        info = run.run_info()
        transformer = args.transformer or info.get("transformer", "dev")  # the recorded ones, unless given
        problems = [
            f"item {p.id!r}, field 'pipeline': {problem}"
            for p in run.plan()
            if (problem := pipeline_problem(p.item.pipeline, transformer))
        ]
        if problems:
            raise ManifestError("\n  ".join([f"{args.resume} cannot resume with this model:", *problems]))
        section = {**_model_section(args, info["model"]), "quantization": info["bundle"]["quantization"]}
        return _model(section, args, device, transformer), info["run_id"]
    if run.exists():
        raise ManifestError(f"{args.out} already holds a run; use --resume {args.out} or pick a new --out.")
    manifest = load_manifest(args.manifest, args.defaults, set_overrides(args.set))
    manifest = replace(manifest, model=_model_section(args, manifest.model))
    transformer = args.transformer or "dev"
    problems, warnings = check(manifest, args.max_tokens or MAX_TOKENS, transformer)
    if warnings:
        print("\n".join(warning_lines(warnings)))
    set_aside = None
    if problems and args.skip_invalid:  # the run goes on without the invalid items, unless the manifest is at fault
        manifest, set_aside, problems = invalid.set_aside(manifest, problems)
    if problems:
        raise ManifestError(report(problems, manifest, warnings))
    model = _model(manifest.model, args, device, transformer)
    planned = plan(manifest, model.identity)
    sidecars = (args.defaults, manifest.path.with_suffix(".yaml"))
    files = [manifest.path, *(Path(p) for p in sidecars if p and Path(p).is_file())]
    details = {
        "argv": sys.argv,
        "args": vars(args),
        "model": manifest.model,
        "bundle": model.identity,
        "bundle_digests": bundle_digests(model.paths),  # what a resume compares (runstore.resume_changes)
        "transformer": transformer,
        "manifest": manifest.source,
        "items": len(planned) + (len(set_aside.items) if set_aside else 0),
    }
    if set_aside:  # before the plan, which makes the folder a run: a run never lacks its set-aside items
        invalid.save(run, set_aside)
    return model, run.record_submission(list(dict.fromkeys(files)), planned, details)


def main(argv: list[str] | None = None) -> int:
    return run_render(parse_args(argv))


def run_render(args: argparse.Namespace) -> int:
    """Render (or, with ``args.resume``, resume) a run from parsed options; return the exit code."""
    run = RunFolder(args.out)
    lease = Lease(run.uri)
    started_absent = not args.resume and run.fs.get_file_info(run.root).type == FileType.NotFound
    try:
        _take(args, run, lease)
    except (ManifestError, StorageError, RunTaken) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _render_held(args, run, lease.token)
    finally:
        lease.release()
        if started_absent and not run.exists():  # refused before its plan: leave no folder behind
            run.fs.delete_dir(run.root)


def _take(args: argparse.Namespace, run: RunFolder, lease: Lease) -> None:
    """Refuse a folder that is not ours before writing anything, then take the run (``runstore.claim``)."""
    if args.resume:
        if not run.exists():
            raise ManifestError(f"{args.resume} is not a run folder (no plan.parquet); start it with MANIFEST --out.")
        if args.set or args.defaults or args.skip_invalid:
            raise ManifestError(
                f"--set, --draft, --defaults and --skip-invalid do not apply to a resume: {args.resume} renders its "
                "submitted plan (and validates its set-aside items again). To change items, edit the manifest and "
                "resume with --replan, or start a new run with MANIFEST --out NEW_RUN."
            )
    else:
        if _resume_choice(args):
            raise ManifestError("--replan and --keep-plan apply to a resume only (ltx-batch resume RUN).")
        problem = run.foreign_problem()
        if problem:
            raise ManifestError(problem)
        run.mark()
    lease.acquire(take_over=getattr(args, "take_over", False))


def _render_held(args: argparse.Namespace, run: RunFolder, session: str) -> int:
    try:
        _connect(args)
        device = _device(args)
        model, run_id = _prepare(args, run, device)
        keep_plan = args.resume and not _settle_resume(args, run, model)
    except (ManifestError, BundleError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    run.claim(session)  # before reading results: a leftover worker of an earlier session stops writing
    fixed, still_invalid = _settle_invalid(args, run, run_id, session, model)
    planned = kept_plan(run) if keep_plan else refresh_fingerprints(run.plan(), model.identity)
    pending = still_to_render(planned, run.results_uri)
    progress = Progress(total=len(pending))
    if fixed:
        progress.note(f"{fixed} item(s) set aside as invalid now pass validation and join the run")
    if still_invalid:
        progress.note(f"{still_invalid} invalid item(s) not rendered: each has an InvalidInput row (see below)")
    if pending:
        progress.note(f"run {run_id}: {len(pending)} of {len(planned)} items to render on {device}")
        enhanced = {}
        if any(p.item.enhance_prompt for p in pending):  # a resumed run reuses what earlier attempts wrote
            enhanced = recorded_enhancements(planned, read_results(run.results_uri))
        exit_code = _render(args, run, run_id, session, model, device, pending, progress, enhanced)
        if exit_code:
            return exit_code
    else:
        valid = "valid " if still_invalid else ""
        progress.note(f"run {run_id}: every {valid}item already has an ok result; nothing to render")
    for line in mark_best(run):  # a retry run's best candidates (runstore.best_candidates); nothing for other runs
        print(line)
    return _summary(run, planned)


def _resume_choice(args: argparse.Namespace) -> str | None:
    chosen = [name for name in (REPLAN, KEEP_PLAN) if getattr(args, name.replace("-", "_"), False)]
    return chosen[0] if chosen else None


def _max_tokens(args: argparse.Namespace, run: RunFolder) -> int:
    """The token bound given, else the run's, else the default."""
    return args.max_tokens or run.run_info().get("args", {}).get("max_tokens") or MAX_TOKENS


def _settle_resume(args: argparse.Namespace, run: RunFolder, model: Model) -> bool:
    """What changed since submission, refused or applied (``ray_jobs.resume_check``); False: ``--keep-plan``."""
    section = _model_section(args, run.run_info()["model"])
    return settle_resume(run, model, _resume_choice(args), args.manifest, _max_tokens(args, run), section)


def _settle_invalid(args, run: RunFolder, run_id: str, session: str, model: Model) -> tuple[int, int]:
    """Validate the run's set-aside items (``--skip-invalid``) against this run's model and token bound."""
    checkpoint = model.paths["checkpoint_path"]
    num_layers = None if is_uri(checkpoint) else transformer_layer_count(checkpoint)
    return invalid.settle(run, run_id, session, model.identity, num_layers, _max_tokens(args, run))


def _render(
    args, run: RunFolder, run_id: str, session: str, model: Model, device: str, pending, progress, enhanced: dict
) -> int:
    if device == "cuda":
        options = {"num_gpus": 1, "num_cpus": 1}
        actors = args.actors or int(ray.cluster_resources().get("GPU", 1))
    else:
        options = {"num_gpus": 0, "num_cpus": args.cpus_per_actor}
        actors = args.actors or max(1, int(ray.available_resources().get("CPU", 1)) // args.cpus_per_actor)
    shards = make_shards(units_of_work(pending, run), args.shard_size, actors)
    actors = min(actors, len(shards))
    remote = ray.remote(RenderActor).options(**WORKER_OPTIONS, **options)
    threads = args.cpus_per_actor if device == "cpu" else 0
    warm = [] if device != "cuda" or args.no_compile else warm_requests(pending)

    def make_actor():
        init = (model.paths, model.quantization, device, run.uri, run_id, session, threads, warm, model.transformer)
        return remote.remote(*init, args.max_loras)

    scheduler = Scheduler(
        make_actor, actors, shards, run.results_uri, run_id, session, progress, args.max_attempts, known=enhanced
    )
    try:
        scheduler.run()
    except NoWorkers as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NO_WORKERS
    return 0


def warm_requests(pending) -> list[RenderRequest]:
    """For each pipeline of the run (two-stage, distilled), ``most_common_request`` of its items."""
    pipelines = dict.fromkeys(p.item.pipeline for p in pending)
    return [most_common_request([p for p in pending if p.item.pipeline == name]) for name in pipelines]


def most_common_request(pending) -> RenderRequest:
    """A request of the shape, LoRA set and settings most items use: what a worker compiles and warms
    before its first item (its media are never read; its LoRAs are loaded)."""
    shape = Counter(_shape(p) for p in pending).most_common(1)[0][0]
    planned = next(p for p in pending if _shape(p) == shape)
    return replace(planned.item.to_request(), num_frames=planned.window_plan[0].rendered)


def _shape(planned) -> tuple:
    return cache_key(planned)[3:]  # height, width, frames, fps and LoRA set: the shape part of the shard key


def _summary(run: RunFolder, planned) -> int:
    summary = run_summary(run, planned)
    not_ok = len(summary.failures) + len(summary.pending)
    lines = ["", f"{summary.ok} ok, {not_ok} not ok, {summary.total} items in the run"]
    lines += [f"  failed {f.item_id}: {f.error_type}: {f.message}".replace("\n", "\n    ") for f in summary.failures]
    lines += [f"  failed {item_id}: not rendered" for item_id in summary.pending]
    throughput = summary.throughput_line()
    lines += [throughput] if throughput else []
    if summary.unscored:
        lines.append(f"quality: {summary.unscored} ok clip(s) without scores; ltx-batch score {run.uri} --missing-only")
    lines += [
        f"outputs: {run.uri.rstrip('/')}/videos/",
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
