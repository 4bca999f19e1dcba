"""The benchmark: one command per measurement, all on a CUDA GPU but ``quality``, ``mux`` and ``campaign``,
results as JSON (``--out``).

    python -m tools.bench forward --out forward.json      # transformer forwards, every variant side by side
    python -m tools.bench clip --bundle DIR --part ours --out ours.json          # end to end, ours (finals, drafts)
    python -m tools.bench clip --bundle DIR --part upstream --out upstream.json  # upstream 1.0.0's loop
    python -m tools.bench clip --bundle DIR --part head --anchor DIR --out head.json  # upstream 1.2.0
    python -m tools.bench clip --bundle DIR --part lora --out lora.json          # a rank-32 user LoRA's cost
    python -m tools.bench clip --bundle DIR --part worker --out worker.json      # finals + drafts, scored
    python -m tools.bench clip --bundle DIR --part worker --transformer distilled --out distilled.json  # drafts
    python -m tools.bench scaling --bundle DIR --gpus 1 2 4 --out scaling.json   # the Ray driver on N GPUs
    python -m tools.bench enhance --out enhance.json   # prompt enhancement, Gemma 12B resident vs streamed
    python -m tools.bench tokens --bundle DIR --out tokens.json  # stage-2 memory per video token
    python -m tools.bench quality --out quality.json    # CPU seconds to score a clip (no GPU needed)
    python -m tools.bench mux --out mux.json            # CPU seconds to encode a clip per setting (no GPU)
    python -m tools.bench longform --bundle DIR --out longform.json   # a 60 s lesson as windows, both modes
    python -m tools.bench longform --bundle DIR --host-memory --out memory.json  # host memory per item length
    python -m tools.bench memory --bundle DIR --cap-gib 32 --out cap.json  # a final and a draft under a 32 GiB cap
    python -m tools.bench ready --bundle DIR --out ready.json   # worker ready: cold, then from the shared cache
    python -m tools.bench profile --bundle DIR --out profile.json  # GPU busy share of a clip, GEMM TFLOP/s
    python -m tools.bench long-scaling --bundle DIR --workers 1 4 --out long.json  # long lessons over N workers
    python -m tools.bench product --bundle DIR --out product.json  # ray_jobs.render: campaign, lessons, cold/persisted
    python -m tools.bench campaign --rows 100000 --yaml-items 10000 --out campaign.json  # the front end at scale (CPU)

``DIR`` holds a random bundle with the released LTX-2.3 sizes; it is written there first if missing.
How each figure is taken is said in ``tools/bench_forward.py``, ``bench_clip.py``, ``bench_lora.py``,
``bench_worker.py``, ``bench_scaling.py``, ``bench_enhance.py``, ``bench_tokens.py``, ``bench_quality.py`` and
``bench_campaign.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    forward = sub.add_parser("forward", help="transformer forward time per variant")
    forward.add_argument("--variants", nargs="+", default=None)
    forward.add_argument("--repeat", type=int, default=10)
    clip = sub.add_parser("clip", help="the reference clip end to end")
    clip.add_argument("--bundle", required=True)
    clip.add_argument("--part", choices=("ours", "upstream", "head", "lora", "worker"), required=True)
    clip.add_argument("--clips", type=int, default=3)
    clip.add_argument("--anchor", help="with --part head: a copy of shared/anchors/upstream-head plus the av wheel")
    clip.add_argument(
        "--transformer", choices=("dev", "distilled"), default="dev", help="with --part worker: the checkpoint held"
    )
    scaling = sub.add_parser("scaling", help="clips per hour of the Ray driver on 1..N GPUs")
    scaling.add_argument("--bundle", required=True)
    scaling.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4])
    scaling.add_argument("--clips-per-gpu", type=int, default=3)
    scaling.add_argument("--shard-size", type=int, default=1, help="items per shard (the driver's default is 8)")
    enhance = sub.add_parser("enhance", help="prompt enhancement with Gemma resident against streamed")
    enhance.add_argument("--size", choices=("reference", "tiny"), default="reference")
    enhance.add_argument("--device", default="cuda")
    enhance.add_argument("--prompts", type=int, default=4, help="prompts enhanced while Gemma is resident")
    enhance.add_argument("--streamed-tokens", type=int, default=8, help="new tokens of the streamed measurement")
    tokens = sub.add_parser("tokens", help="stage-2 activation memory per video token (checks the token bound)")
    tokens.add_argument("--bundle", required=True)
    quality = sub.add_parser("quality", help="CPU seconds to score one clip at the reference size")
    quality.add_argument("--repeat", type=int, default=3)
    mux = sub.add_parser("mux", help="CPU seconds to encode the reference clip's mp4 per encoder setting")
    mux.add_argument("--repeat", type=int, default=3)
    longform = sub.add_parser("longform", help="a full-length lesson rendered as windows (finals, drafts, modes)")
    longform.add_argument("--bundle", required=True)
    longform.add_argument("--seconds", type=float, default=60.0)
    longform.add_argument("--pipelines", nargs="+", default=["two-stage", "distilled"])
    longform.add_argument("--modes", nargs="+", default=["continuous", "cuts"])
    longform.add_argument("--no-compile", action="store_true", help="eager: no compile per window length")
    longform.add_argument("--host-memory", action="store_true", help="peak host memory per item length instead")
    longform.add_argument("--lengths", type=float, nargs="+", default=[10.0, 120.0, 600.0])
    longform.add_argument("--device", default="cuda", help="with --host-memory")
    longform.add_argument("--size", type=int, nargs=2, default=[512, 768], help="with --host-memory: height width")
    memory = sub.add_parser("memory", help="a final and a draft under a GPU memory cap; the FP8 LoRA's error")
    memory.add_argument("--bundle", required=True)
    memory.add_argument("--cap-gib", type=float, default=32.0)
    memory.add_argument("--quantization", default="fp8-compact")
    memory.add_argument("--no-compile", action="store_true")
    ready = sub.add_parser("ready", help="a worker's load + warm-up, cold and with the shared compile cache")
    ready.add_argument("--bundle", required=True)
    prof = sub.add_parser("profile", help="GPU busy share of a steady-state clip and its idle gaps; GEMM TFLOP/s")
    prof.add_argument("--bundle", required=True)
    prof.add_argument("--cache", help="the shared compile cache folder (default: beside --out)")
    longs = sub.add_parser("long-scaling", help="long lessons over N workers: cuts wall, continuous batch, a kill")
    longs.add_argument("--bundle", required=True)
    longs.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    longs.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the tiny bundle's sizes")
    longs.add_argument("--cuts-seconds", type=float, default=300.0, help="the cuts lesson's length")
    longs.add_argument("--lessons", type=int, default=8, help="lessons in the continuous batch")
    longs.add_argument("--lesson-seconds", type=float, default=180.0, help="each continuous lesson's length")
    longs.add_argument("--shard-size", type=int, default=1, help="items (windows of cuts) per shard")
    product = sub.add_parser(
        "product", help="ray_jobs.render on a fresh worker: a campaign and lessons, cold/persisted"
    )
    product.add_argument("--bundle", required=True)
    product.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the tiny bundle's sizes")
    product.add_argument("--campaign", type=int, default=24, help="campaign items, 3 to 20 s")
    product.add_argument("--lessons", type=int, default=3, help="continuous lessons")
    product.add_argument("--lesson-seconds", type=float, default=60.0)
    product.add_argument("--runs", nargs="+", default=None, help="MANIFEST:cold|persisted in order (default: all)")
    campaign = sub.add_parser("campaign", help="validate, plan, status and report of a 100,000-row campaign (CPU)")
    campaign.add_argument("--rows", type=int, default=100_000, help="rows of the Parquet campaign")
    campaign.add_argument("--yaml-items", type=int, default=10_000, help="items of the YAML campaign")
    campaign.add_argument("--work", help="where the manifests and runs go (default: campaign/ beside --out)")
    campaign.add_argument("--bundle", help="the model for the render (default: a tiny random bundle in --work)")
    campaign.add_argument("--skip", nargs="+", default=[], choices=("validate", "render", "status"))
    parts = (forward, clip, scaling, enhance, tokens, quality, mux, longform, memory, ready, prof, longs, product)
    for p in (*parts, campaign):
        p.add_argument("--out", required=True, help="JSON results file (its folder also holds any outputs)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.what == "forward":
        from tools.bench_forward import VARIANTS, run

        report = run(args.variants or VARIANTS, args.repeat)
    elif args.what == "clip":
        from tools.bench_clip import run

        report = run(args.bundle, args.part, args.clips, out, args.anchor, args.transformer)
    elif args.what == "enhance":
        from tools.bench_enhance import run

        report = run(args.size, args.device, args.prompts, args.streamed_tokens)
    elif args.what == "scaling":
        from tools.bench_scaling import run

        report = run(args.bundle, args.gpus, args.clips_per_gpu, out, args.shard_size)
    elif args.what == "tokens":
        from tools.bench_tokens import run

        report = run(args.bundle)
    elif args.what == "mux":
        from tools.bench_mux import run

        report = run(args.repeat)
    elif args.what == "longform":
        from tools.bench_longform import host_memory, run

        if args.host_memory:
            report = host_memory(args.bundle, args.lengths, out, args.device, tuple(args.size))
        else:
            report = run(args.bundle, args.seconds, out, args.pipelines, args.modes, not args.no_compile)
    elif args.what == "ready":
        from tools.bench_ready import run

        report = run(args.bundle, out)
    elif args.what == "profile":
        from tools.bench_profile import run

        report = run(args.bundle, out, args.cache)
    elif args.what == "long-scaling":
        from tools.bench_long_scaling import run

        report = run(
            args.bundle,
            args.workers,
            args.device,
            args.cuts_seconds,
            args.lessons,
            args.lesson_seconds,
            out,
            args.shard_size,
        )
    elif args.what == "product":
        from tools.bench_product import RUNS, run

        runs = args.runs or RUNS
        report = run(args.bundle, out, args.device, args.campaign, args.lessons, args.lesson_seconds, runs)
    elif args.what == "campaign":
        from tools.bench_campaign import run

        report = run(out, args.rows, args.yaml_items, Path(args.work) if args.work else None, args.bundle, args.skip)
    elif args.what == "memory":
        from tools.bench_memory import run

        report = run(args.bundle, args.quantization, args.cap_gib, not args.no_compile, out)
    else:
        from tools.bench_quality import run

        report = run(out, args.repeat)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
