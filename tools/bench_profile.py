"""Where a steady-state clip's time goes on the GPU: ``python -m tools.bench profile --bundle DIR``.

A worker's engine (``fp8-scaled``, compiled, warmed up through the shared compile cache ``--cache`` as
``RenderActor`` is), prompts encoded as per shard, one untimed clip per pipeline; then for finals and drafts,
three clips through the worker's own loop (``ray_jobs.device_turns.render_then_finish``, each mp4 written by the
mux process while the next clip renders). The middle clip is profiled from its start to the next clip's
start, one steady-state period: the GPU's busy share is the union of its kernel and copy intervals over
that period, and every idle gap is listed with the host ops that began inside it (what the GPU waited on).

Then the GEMMs of one stage-1 forward: their FLOPs counted per op by ``FlopCounterMode`` on the same engine
run eagerly (``torch.compiler.set_stance("force_eager")``, no CUDA graph; the same block plan, so the shared
STG prefix counts as done once), over the kernel time of the GEMMs in the compiled, graphed forward:
achieved TFLOP/s, FP8 (``_scaled_mm``) and bf16 apart, against the H200's dense rates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import DeviceType, ProfilerActivity, profile

from ltxcore import compile_cache
from ltxcore.artifacts import ArtifactCache
from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from ltxcore.recipes import prompt_pair
from ltxcore.render_result import RenderResult
from ltxcore.request import RenderRequest
from manifests.model_section import bundle_identity
from ray_jobs.device_turns import render_then_finish
from ray_jobs.worker_scoring import written_then_scores
from tools.reference_clip import ensure_bundle, reference_request, write_stereo_speech

GEMM_WORDS = ("gemm", "xmma", "cutlass", "nvjet", "scaled_mm", "matmul", "cublas")
FP8_WORDS = ("e4m3", "f8", "fp8", "qq")  # cuBLAS names FP8 kernels by their input types
H200_DENSE_TFLOPS = {"fp8": 1979.0, "bf16": 989.0}  # the datasheet's dense rates
PERIOD = "steady-state period"  # the profiled clip's start to the next clip's start
GAP_FLOOR_NS = 20_000  # gaps shorter than 20 us are launch latency inside a phase, not waiting


def is_gemm(name: str) -> bool:
    """A GEMM kernel. Inductor names its fused kernels after the ops they serve, so the FP8 activation
    quantization before a ``_scaled_mm`` is ``triton_..._scaled_mm_...``: that is not a GEMM."""
    return not name.startswith("triton_") and any(w in name.lower() for w in GEMM_WORDS)


def is_fp8_gemm(name: str) -> bool:
    return is_gemm(name) and any(w in name.lower() for w in FP8_WORDS)


def merged(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching (start, end) intervals joined: what the GPU was busy with, once."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def busy_and_gaps(events: list, window: tuple[int, int], gaps_listed: int = 12) -> dict:
    """The GPU's busy share of ``window`` (ns) and its idle gaps, each with the host ops begun inside it."""
    lo, hi = window
    device = [e for e in events if e.device_type() == DeviceType.CUDA and not e.is_user_annotation()]
    inside = [e for e in device if e.end_ns() > lo and e.start_ns() < hi]
    spans = merged((max(e.start_ns(), lo), min(e.end_ns(), hi)) for e in inside)
    busy = sum(end - start for start, end in spans)
    edges = [(lo, lo), *spans, (hi, hi)]
    gaps = [(b[0] - a[1], a[1], b[0]) for a, b in zip(edges, edges[1:], strict=False) if b[0] - a[1] >= GAP_FLOOR_NS]
    host = sorted((e.start_ns(), e.name()) for e in events if e.device_type() == DeviceType.CPU)
    listed = []
    for length, start, end in sorted(gaps, reverse=True)[:gaps_listed]:
        began = Counter(name for t, name in host if start <= t < end)
        listed.append({"ms": length / 1e6, "at_ms": (start - lo) / 1e6, "host_ops": dict(began.most_common(6))})
    return {
        "period_ms": (hi - lo) / 1e6,
        "gpu_busy_ms": busy / 1e6,
        "gpu_busy_share": busy / (hi - lo),
        "idle_gaps_over_20us": len(gaps),
        "idle_in_gaps_ms": sum(g[0] for g in gaps) / 1e6,
        "largest_gaps": listed,
    }


def profile_steady_clip(engine: Engine, requests: list[RenderRequest], folder: Path, prefix: str) -> dict:
    """Three clips through the worker's loop; the second profiled from its start to the third's start."""
    assert len(requests) == 3, "the profiled clip has one before it and one after it"
    profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    period = torch.profiler.record_function(PERIOD)
    timings: list[dict] = []

    def start(entry: tuple[int, RenderRequest]) -> Callable[[], tuple[RenderResult, dict | None]]:
        i, request = entry
        if i == 1:
            torch.cuda.synchronize()
            profiler.start()
            period.__enter__()
        elif i == 2:
            torch.cuda.synchronize()
            period.__exit__(None, None, None)
            profiler.stop()
        if i + 1 < len(requests):
            engine.audio_ahead.ahead(requests[i + 1])  # as the worker does (``RenderActor._read_ahead``)
        result = engine.render(request, folder / f"{prefix}-{i}.mp4", background_mux=True)
        timings.append(result.timings)
        return lambda: (result, written_then_scores(result, None))

    list(render_then_finish(enumerate(requests), start))
    events = _events(profiler)
    marker = next(e for e in events if e.name() == PERIOD and e.device_type() == DeviceType.CPU)
    inside = [e for e in events if e.name() != PERIOD]  # the marker itself, on the host and its GPU copy
    report = busy_and_gaps(inside, (marker.start_ns(), marker.end_ns()))
    report["device_events"] = sum(e.device_type() == DeviceType.CUDA for e in inside)  # kernels, copies, sets
    report["phases_s"] = timings[1]
    return report


def _events(prof: profile) -> list:
    """The profiler's raw events (kineto's, not FunctionEvents: a final's ~200,000 kernels read in seconds)."""
    assert prof.profiler is not None and prof.profiler.kineto_results is not None, "the profiler has stopped"
    return list(prof.profiler.kineto_results.events())


def gemm_rates(engine: Engine) -> dict:
    """Achieved TFLOP/s of the GEMMs in one compiled stage-1 forward of the reference clip (batch of 4 passes)."""
    from ltx_core.components.guiders import MultiModalGuider
    from ltx_core.types import VideoPixelShape
    from torch.utils.flop_counter import FlopCounterMode

    from ltxcore.guidance import batched_perturbations, guidance_passes, synthetic_inputs
    from tools.reference_clip import GUIDER, REFERENCE

    passes = guidance_passes(MultiModalGuider(params=GUIDER.to_upstream()))
    shape = VideoPixelShape(1, REFERENCE.num_frames, REFERENCE.height // 2, REFERENCE.width // 2, REFERENCE.frame_rate)
    video, audio = synthetic_inputs(engine.transformer, shape, len(passes))
    perturbations = batched_perturbations(passes)

    def forward() -> None:
        engine.transformer(video=video, audio=audio, perturbations=perturbations)

    with torch.inference_mode():
        forward()
        torch.cuda.synchronize()
        runs: list[dict[str, float]] = []  # per profiled forward: GEMM kernel ms by kernel name
        for _ in range(3):
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                forward()
                torch.cuda.synchronize()
            names: Counter[str] = Counter()
            for e in _events(prof):
                if e.device_type() == DeviceType.CUDA and is_gemm(e.name()):
                    names[e.name()[:90]] += e.duration_ns() / 1e6
            runs.append(dict(names))
        runs.sort(key=lambda run: sum(run.values()))
        middle = runs[1]  # the forward of median GEMM time: both kinds' figures come from it
        counter = FlopCounterMode(display=False)
        graphs, engine.blocks.cuda_graphs = engine.blocks.cuda_graphs, False
        try:
            with torch.compiler.set_stance("force_eager"), counter:
                forward()
        finally:
            engine.blocks.cuda_graphs = graphs
    flops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    fp8 = sum(n for op, n in flops.items() if "_scaled_mm" in op)
    bf16 = sum(n for op, n in flops.items() if op.split(".")[-1] in ("mm", "addmm", "bmm", "baddbmm"))
    fp8_ms = sum(ms for name, ms in middle.items() if is_fp8_gemm(name))
    seconds = {"fp8": fp8_ms / 1e3, "bf16": (sum(middle.values()) - fp8_ms) / 1e3}
    report = {"tflop_by_op": {op: n / 1e12 for op, n in flops.items()}, "gemm_kernel_ms_by_name": middle}
    for kind, n in (("fp8", fp8), ("bf16", bf16)):
        rate = n / seconds[kind] / 1e12 if seconds[kind] else 0.0
        report[kind] = {
            "tflop": n / 1e12,
            "kernel_ms": seconds[kind] * 1e3,
            "tflops": rate,
            "share_of_dense_peak": rate / H200_DENSE_TFLOPS[kind],
        }
    return report


def run(bundle: str, out: Path, cache: str | None) -> dict:
    folder, made_s = ensure_bundle(Path(bundle))
    write_stereo_speech()
    model = ModelBundle.from_folder(folder, quantization="fp8-scaled")
    engine = Engine(model, "cuda", compile=True)
    final = reference_request(0)
    finals = [reference_request(i) for i in range(4)]
    batches = {"final": finals, "draft": [replace(r, pipeline="distilled") for r in finals]}
    warm = (final, replace(final, pipeline="distilled"))
    shared = ArtifactCache.of(cache or str(out.parent / "compile-cache"), bundle_identity(model.paths(), "fp8-scaled"))
    hit, warm_up_s = compile_cache.warm_up_shared(shared, engine, warm, engine.warm_up)
    report: dict = {"bundle_written_s": made_s, "compile_cache_hit": hit, "warm_up_s": warm_up_s}
    engine.warm_prompts([prompt_pair(r) for batch in batches.values() for r in batch])
    for name, batch in batches.items():
        engine.render(batch[0], out.parent / f"first-{name}.mp4")  # the mux process and its threads warm too
        report[name] = profile_steady_clip(engine, batch[1:], out.parent, f"profiled-{name}")
    report["stage_1_gemms"] = gemm_rates(engine)
    return report
