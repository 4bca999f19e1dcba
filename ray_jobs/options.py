"""The options of a render, defined once: ``ltx-batch render``, ``ltx-batch resume`` and
``python -m ray_jobs.render`` all build their parsers from here, so each ``--help`` lists every option, and
each turns what it parsed into the same ``RunOptions`` here; no module past this one sees argparse.

Kept free of Ray and torch imports, so ``ltx-batch --help`` stays fast.
"""

from __future__ import annotations

import argparse

from ltxcore.bundle import OPTIONAL_NAMES, QUANTIZATIONS, TRANSFORMERS
from ltxcore.token_bound import MAX_TOKENS_HELP
from manifests.model_options import ModelOptions
from ray_jobs.run_options import MODEL_FILES, ItemOptions, ResumeOptions, RunOptions, WorkerOptions


def parse_render_argv(argv: list[str] | None) -> RunOptions:
    """The options of ``python -m ray_jobs.render``."""
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
    if not args.resume and not (args.manifest and args.out):
        parser.error("give MANIFEST --out RUN, or --resume RUN")
    return run_options(args)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The ``RunOptions`` of a parsed render or resume: of ``python -m ray_jobs.render`` (``--resume RUN``),
    of ``ltx-batch render`` / ``ltx-batch resume RUN``, or of ``ltx-batch retry-weak`` (no manifest yet)."""
    from storage.fs import local_or_uri  # here, not above: pyarrow would slow every ``ltx-batch --help``

    resume = getattr(args, "resume", None)
    return RunOptions(
        out=getattr(args, "out", None) or resume or "",  # ``ltx-batch prepare`` has no run folder
        manifest=None if resume else getattr(args, "manifest", None),
        workers=WorkerOptions(
            actors=args.actors,
            shard_size=args.shard_size,
            device=args.device,
            compile=not args.no_compile,
            max_attempts=args.max_attempts,
            cpus_per_actor=args.cpus_per_actor,
            max_loras=args.max_loras,
            local_cpus=args.local_cpus,
            address=args.address,
            take_over=args.take_over,
            cache=local_or_uri(args.cache) if args.cache else None,
        ),
        model=model_options(args),
        items=ItemOptions(
            defaults=args.defaults,
            overrides=tuple(args.set),
            max_tokens=args.max_tokens,
            skip_invalid=args.skip_invalid,
        ),
        resume_with=ResumeOptions(
            choice=next((c for c in ("replan", "keep-plan") if getattr(args, c.replace("-", "_"), False)), None),
            manifest=getattr(args, "manifest", None) if resume else None,
        ),
    )


def add_render_options(parser: argparse.ArgumentParser) -> None:
    """Everything a render or a resume takes besides the manifest, ``--out`` and ``--resume``."""
    workers = parser.add_argument_group("workers")
    workers.add_argument("--actors", type=int, help="render workers (default: one per GPU, else per free CPU)")
    workers.add_argument("--shard-size", type=int, default=8, help="items per shard (default 8)")
    workers.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    workers.add_argument(
        "--no-compile",
        action="store_true",
        help="GPU workers skip compiling the transformer (faster start, slower items)",
    )
    workers.add_argument("--max-attempts", type=int, default=3, help="tries per item when workers die")
    workers.add_argument("--cpus-per-actor", type=int, default=1, help="CPU threads per worker on CPU")
    workers.add_argument(
        "--max-loras",
        type=int,
        default=4,
        help="user LoRAs a worker holds in memory at once, least recently used evicted (default 4)",
    )
    workers.add_argument(
        "--take-over",
        action="store_true",
        help="take the run from a driver that holds it (its later results are not counted); only if it is gone",
    )
    workers.add_argument("--local-cpus", type=int, help="CPUs for a local Ray started by this command")
    workers.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the Ray cluster to render on (default: RAY_ADDRESS, which ray job submit sets; neither: a local Ray)",
    )
    workers.add_argument(
        "--cache",
        metavar="URI",
        help="artifact cache (folder or s3:// / gs://) where workers keep compiled graphs and FP8 weights for later "
        "workers and runs (default: each node's $LTX_BATCH_CACHE/artifacts, else ~/.cache/ltx-batch/artifacts)",
    )
    add_model_options(parser)
    add_item_options(parser).add_argument(
        "--skip-invalid",
        action="store_true",
        help="render the valid items of a manifest and record each invalid one as a failed row (InvalidInput)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model of a render, and of the ``validate`` that checks a manifest as that render will."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        help="default: fp8-scaled on FP8 GPUs (Ada, Hopper, Blackwell), fp8-cast on others, none on CPU; "
        "fp8-compact: fp8-scaled with the LoRAs in FP8 too, a final within a 32 GB card",
    )
    model.add_argument(
        "--transformer",
        choices=TRANSFORMERS,
        help="dev (default): the dev checkpoint, for every pipeline; distilled: the bundle's "
        f"{OPTIONAL_NAMES['distilled_checkpoint_path']}, for runs of drafts only (no LoRA). A resume keeps the run's",
    )
    model.add_argument("--bundle", help="model folder with the released file names")
    for name in MODEL_FILES:
        model.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"override the bundle's {name}")


def add_item_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How a render reads its items (the defaults, ``--set``, ``--draft``, the token bound), and ``validate``
    the same way; the group, for what only one of them takes."""
    items = parser.add_argument_group("items")
    items.add_argument("--defaults", help="YAML with model/defaults for a Parquet manifest")
    items.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a default for every item, e.g. --set num_inference_steps=20",
    )
    items.add_argument(
        "--draft",
        action="append_const",
        dest="set",
        const="pipeline=distilled",
        help="render drafts: the distilled pipeline, about 4x the clips per hour (same as --set pipeline=distilled); "
        "then ltx-batch promote the ones to keep",
    )
    items.add_argument("--max-tokens", type=int, help=MAX_TOKENS_HELP)
    return items


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The model given on the command line (``add_model_options``)."""
    from storage.fs import local_or_uri  # here, not above: pyarrow would slow every ``ltx-batch --help``

    return ModelOptions(
        bundle=local_or_uri(args.bundle) if args.bundle else None,
        files=tuple((name, getattr(args, name)) for name in MODEL_FILES if getattr(args, name)),
        quantization=args.quantization,
        transformer=args.transformer,
    )


def add_resume_options(parser: argparse.ArgumentParser) -> None:
    """What a resume does when the manifest, the bundle or an input file changed since submission: it refuses,
    listing the changes, unless one of these chooses."""
    resume = parser.add_argument_group("resume").add_mutually_exclusive_group()
    resume.add_argument(
        "--replan",
        action="store_true",
        help="render the changes: edited and added items from the new manifest, removed ones dropped, "
        "changed files re-render the items they touch",
    )
    resume.add_argument(
        "--keep-plan",
        action="store_true",
        help="render the submitted plan as it was, ignoring the changes (finished items stay finished)",
    )
