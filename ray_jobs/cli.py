"""``ltx-batch``: one command for the whole workflow. It wraps the modules that do the work.

Errors are one sentence, no traceback, unless ``--debug`` is given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ray_jobs.options import (
    add_item_options,
    add_model_options,
    add_render_options,
    add_resume_options,
    model_options,
    run_options,
)

if TYPE_CHECKING:
    from runstore.run_folder import RunFolder

EXAMPLES = {
    "validate": "ltx-batch validate lessons.yaml",
    "render": "ltx-batch render lessons.yaml --out runs/lessons-0312 --bundle /models/ltx-2.3",
    "resume": "ltx-batch resume runs/lessons-0312",
    "prepare": "ltx-batch prepare lessons.yaml --bundle /models/ltx-2.3 --cache s3://studio/ltx-cache",
    "status": "ltx-batch status runs/lessons-0312",
    "report": "ltx-batch report runs/lessons-0312   # then open runs/lessons-0312/report/index.html",
    "promote": "ltx-batch promote runs/drafts --out runs/finals --exclude clip-7 clip-9",
    "bundle": "ltx-batch bundle check /models/ltx-2.3",
    "make-tiny-bundle": "ltx-batch make-tiny-bundle ~/.cache/ltx-batch/tiny-bundle",
    "lessons": 'ltx-batch lessons --image presenter.png --audio recordings/ --prompt "A teacher ..." -o lessons.yaml'
    " --lora presenter.safetensors 0.8",
    "personalize": 'ltx-batch personalize customers.csv --template "Hi {first_name} ..." -o campaign.parquet',
    "schema": "ltx-batch schema > ltx-batch.schema.json",
    "score": "ltx-batch score runs/lessons-0312   # or: ltx-batch score clip.mp4 --reference presenter.png",
    "retry-weak": "ltx-batch retry-weak runs/lessons-0312 --out runs/lessons-0312-retry "
    '--where "lipsync_confidence < 0.5" --seeds 3 --set video_modality_scale=4',
}


def _validate(args) -> int:
    from manifests.load import ManifestSource
    from manifests.validate import validate_source

    source = ManifestSource(args.manifest, args.defaults, tuple(args.set), model_options(args))
    return validate_source(source, args.max_tokens, args.verbose)


def _render(args) -> int:
    from ray_jobs.render import run_render

    return run_render(run_options(args))


def _prepare(args) -> int:
    from ray_jobs.prepare import run_prepare

    return run_prepare(run_options(args))


def status_lines(run_uri: str, weakest: int = 5) -> list[str]:
    """Counts, failures grouped by error (the most common: ``failure_lines``), throughput, (while items are left)
    an ETA, and the ``weakest`` items per quality score: a few dozen lines however big the run."""
    from ray_jobs.quality_view import quality_lines
    from ray_jobs.summary import SUMMARY_COLUMNS, failure_lines, invalid_ids, summarize
    from runstore.latest import latest_table
    from runstore.results import read_results
    from runstore.run_folder import RunFolder

    run = RunFolder(run_uri)
    info = run.run_info()
    planned_ids, attempts = run.plan_ids(), read_results(run.results_uri, SUMMARY_COLUMNS)
    summary = summarize(planned_ids, attempts, invalid_ids(run))
    counts = summary.counts
    invalid = f" ({summary.invalid} with invalid input)" if summary.invalid else ""
    lines = [
        f"run {info['run_id']}: {summary.total} items, {counts['ok']} ok, {counts['failed']} failed"
        f"{invalid}, {counts['pending']} not rendered yet"
    ]
    if "promoted_from" in info:
        lines.append(f"  promoted from draft run {info['promoted_from']['run_id']} ({info['promoted_from']['run']})")
    lines += partial_lines(run, set(summary.pending))
    lines += failure_lines(summary.failure_groups())
    throughput = summary.throughput_line()
    if throughput:
        lines.append(throughput)
        if summary.pending:
            lines.append(f"ETA at that rate: {summary.eta_hours:.2f} h for the {counts['pending']} items left")
    return lines + quality_lines(latest_table(planned_ids, attempts), weakest)


MAX_PARTIAL = 10  # partly rendered items named by status


def partial_lines(run: RunFolder, pending: set[str]) -> list[str]:
    """Items without a row yet whose windows are partly (or all, a ``cuts`` item waiting for its join) in the run
    folder: a resume renders only the rest."""
    from runstore.window_store import finished_counts

    plan = run.plan_table(["id", "fingerprint", "windows"]).to_pydict()
    several = {i: (fp, len(w or ())) for i, fp, w in zip(plan["id"], plan["fingerprint"], plan["windows"], strict=True)}
    items = [(i, fp) for i, (fp, n) in several.items() if i in pending and n > 1]
    finished = finished_counts(run, items) if items else {}
    if not finished:
        return []
    named = [f"{i} {n}/{several[i][1]}" for i, n in finished.items()]
    more = f" and {len(named) - MAX_PARTIAL} more" if len(named) > MAX_PARTIAL else ""
    head = f"  {len(named)} of them partly rendered (windows finished, kept for the resume): "
    return [head + ", ".join(named[:MAX_PARTIAL]) + more]


def _status(args) -> int:
    print("\n".join(status_lines(args.run, args.weakest)))
    return 0


def _score(args) -> int:
    from ray_jobs.score_command import score_clip, score_run

    if args.target.endswith(".mp4"):
        print("\n".join(score_clip(args.target, args.reference)))
    else:
        print("\n".join(score_run(args.target, args.jobs, args.missing_only)))
    return 0


def _retry_weak(args) -> int:
    from ray_jobs.retry_weak import Retry, retry_weak

    return retry_weak(Retry(args.run, args.where, args.seeds, args.by), run_options(args))


def _report(args) -> int:
    from ray_jobs.report import report_written

    print(report_written(args.run))
    return 0


def _promote(args) -> int:
    import shlex

    from runstore.promote import Selection, promote

    selection = Selection(tuple(args.only), tuple(args.exclude), args.where)
    run_id, finals = promote(args.run, args.out, selection, sys.argv)
    print(f"run {run_id}: {len(finals)} draft(s) of {args.run} planned as final two-stage renders in {args.out}")
    print(f"render them with: ltx-batch resume {shlex.quote(args.out)}")
    return 0


def _bundle_check(args) -> int:
    from ltxcore.bundle import ModelBundle
    from manifests.model_section import bundle_files

    if args.checkpoint_path:
        bundle = ModelBundle.from_paths(
            checkpoint_path=args.checkpoint_path,
            distilled_lora=args.distilled_lora,
            spatial_upsampler_path=args.spatial_upsampler_path,
            gemma_root=args.gemma_root,
            distilled_checkpoint_path=args.distilled_checkpoint_path,
            transformer=args.transformer,
        )
    else:
        bundle = ModelBundle.from_folder(args.folder, transformer=args.transformer)
    print(bundle.describe())
    for role, files in bundle_files(bundle.paths()).items():
        print(f"  {role}: {sum(f['size'] for f in files) / 2**30:.2f} GiB in {len(files)} file(s)")
    print(f"ok: every file is present, is safetensors, and the checkpoint carries its config ({args.transformer})")
    return 0


def _make_tiny(args) -> int:
    from fixtures.random_bundle import make_tiny_bundle, write_random_lora

    bundle = make_tiny_bundle(args.folder, seed=args.seed, distilled_checkpoint=args.distilled_checkpoint)
    print(bundle.describe())
    if args.lora:
        print(f"  user LoRA: {write_random_lora(bundle, args.lora, rank=8, seed=args.seed)}")
    return 0


def image_specs(values: list[list[str]]) -> list:
    """``--image PATH [FRAME [STRENGTH]]`` occurrences as builder image specs (upstream's ``--image`` order)."""
    from manifests.builders import BuildError, ImageSpec

    specs = []
    for value in values:
        try:
            if not 1 <= len(value) <= 3:
                raise ValueError
            frame = int(value[1]) if len(value) > 1 else 0
            specs.append(ImageSpec(Path(value[0]), frame, float(value[2]) if len(value) > 2 else 1.0))
        except ValueError:
            raise BuildError(
                [f"--image {' '.join(value)}: write PATH [FRAME [STRENGTH]], e.g. pose.png 48 0.8"]
            ) from None
    return specs


def _lessons(args) -> int:
    from ltxcore.request import LoraSpec
    from manifests.builders import build_lessons, find_recordings, grouping_lines

    out = build_lessons(
        image_specs(args.image),
        Path(args.audio),
        args.prompt,
        Path(args.output),
        seed=args.seed,
        frame_rate=args.frame_rate,
        height=args.height,
        width=args.width,
        lesson=args.lesson,
        loras=[(spec.path, spec.strength) for spec in map(LoraSpec.parse, args.lora)],
        enhance_prompt=args.enhance_prompt,
    )
    print("\n".join(grouping_lines(find_recordings(Path(args.audio), args.lesson))))
    print(f"wrote {out}; check it with: ltx-batch validate {out}")
    return 0


def _personalize(args) -> int:
    from manifests import safe_yaml
    from manifests.builders import build_personalization

    defaults = safe_yaml.load(Path(args.defaults)) if args.defaults else None
    defaults = (defaults or {}).get("defaults", defaults)
    if args.enhance_prompt:
        defaults = {**(defaults or {}), "enhance_prompt": True}
    out = build_personalization(
        Path(args.csv),
        args.template,
        Path(args.output),
        audio_column=args.audio_column,
        image_column=args.image_column,
        id_column=args.id_column,
        lora_columns=tuple(args.lora_column),
        defaults=defaults,
    )
    print(f"wrote {out}; check it with: ltx-batch validate {out}")
    return 0


def _schema(args) -> int:
    from manifests.json_schema import schema_text

    print(schema_text(), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ltx-batch", description="Batch-render talking videos with LTX-2.3.")
    root.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = root.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=f"example: {EXAMPLES[name]}")

    p = add("validate", "List every problem of a manifest at once; exit 1 if there is any.")
    p.add_argument("manifest")
    add_model_options(p)
    add_item_options(p)
    p.add_argument("--verbose", action="store_true", help="list every problem and every item's windows")
    p.set_defaults(handler=_validate)
    p = add("render", "Render a manifest on Ray.")
    p.add_argument("manifest", help="a .yaml or .parquet manifest")
    p.add_argument("--out", required=True, help="run folder, local or s3:// / gs://")
    add_render_options(p)
    p.set_defaults(handler=_render)
    p = add("resume", "Render only the items of RUN without an ok result.")
    p.add_argument("resume", metavar="run", help="the run folder")
    p.add_argument("--manifest", help="the edited manifest to compare (default: the path it was submitted from)")
    add_render_options(p)
    add_resume_options(p)
    p.set_defaults(handler=_render)
    p = add(
        "prepare",
        "Make what render workers start from (FP8 weights; on a GPU, compiled graphs) in the artifact cache "
        "(--cache), once, ahead of a big run.",
    )
    p.add_argument("manifest", help="the manifest the run will render (its shapes are what workers compile)")
    add_render_options(p)
    p.set_defaults(handler=_prepare)
    p = add("status", "Counts, failures grouped by error, throughput, ETA and the weakest clips of a run.")
    p.add_argument("run")
    p.add_argument("--weakest", type=int, default=5, metavar="N", help="items listed per quality score (default 5)")
    p.set_defaults(handler=_status)
    p = add("score", "Compute the quality scores (lip sync, flicker, identity) of a run's clips, or of one mp4.")
    p.add_argument("target", metavar="RUN_OR_MP4")
    p.add_argument("--reference", help="with an mp4: the image it was rendered from")
    p.add_argument("--jobs", type=int, default=1, help="clips scored at once (one CPU each)")
    p.add_argument("--missing-only", action="store_true", help="only clips without scores yet")
    p.set_defaults(handler=_score)
    p = add("retry-weak", "Re-render the clips of RUN that match --where as best-of-N candidates in a new run.")
    p.add_argument("run")
    p.add_argument("--out", required=True, help="the new run folder")
    p.add_argument("--where", required=True, help='which clips, e.g. "lipsync_confidence < 0.5 or flicker > 2"')
    p.add_argument("--seeds", type=int, default=0, metavar="K", help="candidates per clip, each with a new seed")
    p.add_argument("--by", help="the score that picks the best candidate (default: the one --where names)")
    add_render_options(p)
    p.set_defaults(handler=_retry_weak)
    p = add("report", "Build RUN/report/index.html: a page of thumbnails, settings and errors.")
    p.add_argument("run")
    p.set_defaults(handler=_report)
    p = add("promote", "Plan chosen drafts of RUN as final two-stage renders (same seeds and settings) in a new run.")
    p.add_argument("run", help="the draft run folder")
    p.add_argument("--out", required=True, help="the new run folder; then: ltx-batch resume OUT")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="ID", help="promote only these items")
    p.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="ID", help="leave these items out")
    p.add_argument("--where", help="keep items whose latest result matches, e.g. 'status == \"ok\"'")
    p.set_defaults(handler=_promote)
    p = add("bundle", "Check a model bundle's files, version and sizes without loading it.")
    checks = p.add_subparsers(dest="action", required=True)
    c = checks.add_parser("check", help="verify a bundle folder (or the four paths)")
    c.add_argument("folder", nargs="?", help="folder with the released file names")
    for name in ("checkpoint_path", "distilled_lora", "spatial_upsampler_path", "gemma_root"):
        c.add_argument(f"--{name.replace('_', '-')}", dest=name)
    c.add_argument("--distilled-checkpoint-path", help="the distilled checkpoint, for --transformer distilled")
    c.add_argument("--transformer", choices=("dev", "distilled"), default="dev", help="check for workers holding it")
    c.set_defaults(handler=_bundle_check)
    p = add("make-tiny-bundle", "Write a tiny random bundle in the released format (tests, demos).")
    p.add_argument("folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distilled-checkpoint", action="store_true", help="also write a tiny distilled checkpoint")
    p.add_argument("--lora", metavar="FILE", help="also write a random user LoRA for it (rank 8, every block linear)")
    p.set_defaults(handler=_make_tiny)
    p = add("lessons", "Build a lesson-series manifest: one presenter image, one recording per language.")
    p.add_argument(
        "--image",
        required=True,
        action="append",
        nargs="+",
        metavar=("PATH", "FRAME STRENGTH"),
        help="presenter image (frame 0); repeat for more, e.g. --image pose.png 48 0.8 (a keyframe at frame 48)",
    )
    p.add_argument("--audio", required=True, help="folder of <lang>.<ext> files, or of one folder per lesson")
    p.add_argument("--prompt", required=True)
    p.add_argument("--enhance-prompt", action="store_true", help="Gemma rewrites the prompt before encoding")
    p.add_argument("--lesson", help="lesson name when --audio holds one lesson (default: the folder's name)")
    p.add_argument("--seed", type=int, default=42, help="one seed shared by every item")
    p.add_argument("--frame-rate", type=float, default=25.0)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=768)
    p.add_argument(
        "--lora",
        nargs="+",
        action="append",
        default=[],
        metavar=("PATH", "STRENGTH"),
        help="a LoRA for every item (strength default 1.0); repeatable, as upstream's --lora",
    )
    p.add_argument("-o", "--output", required=True, help="the manifest to write (.yaml)")
    p.set_defaults(handler=_lessons)
    p = add("personalize", "Build a Parquet manifest from a CSV and a prompt template with {column} fields.")
    p.add_argument("csv")
    p.add_argument("--template", required=True)
    p.add_argument("--audio-column", default="audio")
    p.add_argument("--image-column")
    p.add_argument("--id-column")
    p.add_argument(
        "--lora-column",
        action="append",
        default=[],
        help="a column holding one LoRA per row, PATH or PATH:STRENGTH (empty: the defaults' LoRAs); repeatable",
    )
    p.add_argument("--defaults", help="YAML with manifest defaults, written beside the Parquet file")
    p.add_argument("--enhance-prompt", action="store_true", help="Gemma rewrites each row's prompt before encoding")
    p.add_argument("-o", "--output", required=True, help="the manifest to write (.parquet)")
    p.set_defaults(handler=_personalize)
    p = add("schema", "Print the manifest's JSON Schema, for editors that complete and check manifests as typed.")
    p.set_defaults(handler=_schema)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ray_jobs.scratch import temporary_files_in_scratch  # here: --help stays quick (it reaches pyarrow)

    try:
        with temporary_files_in_scratch():
            return args.handler(args)
    except KeyboardInterrupt:  # render and resume say what they kept (ray_jobs.render); the rest change nothing
        print("\ninterrupted.", file=sys.stderr)
        return 130
    except Exception as e:  # the one place that turns any failure into one sentence
        if args.debug:
            raise
        problems = getattr(e, "problems", None)
        message = "\n  ".join(problems) if problems else str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"error: {message or type(e).__name__} (run with --debug for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
