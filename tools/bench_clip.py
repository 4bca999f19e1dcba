"""End-to-end benchmark of the reference clip at LTX-2.3 size, three parts on one GPU and one bundle:
our resident engine; upstream 1.0.0's ``A2VidPipelineTwoStage`` called in a loop (PyPI); upstream 1.2.0 at
its fastest single-GPU settings (the anchor in ``../shared/anchors/upstream-head``, own environment).

    python -m tools.bench clip --bundle /tmp/ref-bundle --part ours --out ours.json
    python -m tools.bench clip --bundle /tmp/ref-bundle --part upstream --out upstream.json
    python -m tools.bench clip --bundle /tmp/ref-bundle --part head --anchor ANCHOR_COPY --out head.json

The clip and the bundle are the reference ones (``tools/reference_clip.py``: 768x512, 97 frames at 25 fps,
a prompt of its own per clip; random weights with the released 22B configs, written if missing), so every
load, including upstream's per-call rebuild from disk, reads real-size files.

``ours``: the default engine (``fp8-scaled``, compiled); worker-ready time (load + compile warm-up) and
the load's peak memory; prompts encoded as a worker does per shard; per-phase medians, wall, peak memory
per phase over ``--clips`` clips after one untimed clip; the steady state of a worker (the same clips
through the worker's own loop, each mp4 written in the background while the next clip runs: seconds per
clip); the same clips as drafts (the distilled pipeline, ``report["draft"]``, see ``tools/bench_draft.py``);
a torch.profiler read of one stage-1 forward (kernels, launch calls, GEMM share of GPU time); then the same
clip with every block in FP8, and in bf16 (eager) as the reference of the final-latent errors and for the
FLOPs per clip.
``upstream``: wall per clip (pipeline call + its mp4 encode). ``head``: the anchor script's own report.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import torch

from ltxcore.bundle import ModelBundle
from ltxcore.engine import DISTILLED, Engine
from ltxcore.fp8 import quantize_blocks
from ltxcore.guidance import synthetic_inputs
from tools.bench_draft import measure_draft
from tools.bench_worker import steady_state
from tools.reference_clip import (
    AUDIO,
    GUIDER,
    IMAGE,
    REFERENCE,
    ensure_bundle,
    reference_request,
    write_stereo_speech,
)
from tools.timing import GIB, medians


def transformer_flops(engine: Engine, passes: int) -> dict[str, float]:
    """FLOPs of the transformer per reference clip (matmuls and attention), counted on one forward per stage."""
    from ltx_core.types import VideoPixelShape
    from torch.utils.flop_counter import FlopCounterMode

    per_stage = {}
    shapes = {
        "stage_1": (REFERENCE.height // 2, REFERENCE.width // 2, passes, 0.0),
        "stage_2": (REFERENCE.height, REFERENCE.width, 1, 1.0),
    }
    for stage, (height, width, batch, strength) in shapes.items():
        shape = VideoPixelShape(1, REFERENCE.num_frames, height, width, REFERENCE.frame_rate)
        video, audio = synthetic_inputs(engine.transformer, shape, batch)
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), engine.adapters.active({DISTILLED: strength}), counter:
            engine.transformer(video=video, audio=audio, perturbations=None)
        per_stage[stage] = counter.get_total_flops()
    steps_1 = REFERENCE.num_inference_steps
    return {
        "stage_1_tflop_per_forward": per_stage["stage_1"] / 1e12,
        "stage_2_tflop_per_forward": per_stage["stage_2"] / 1e12,
        "tflop_per_clip": (steps_1 * per_stage["stage_1"] + 3 * per_stage["stage_2"]) / 1e12,
    }


def profile_stage_1(engine: Engine) -> dict:
    """Kernels, launch calls and the GEMM share of GPU time in one stage-1 forward (as warmed up)."""
    from ltx_core.components.guiders import MultiModalGuider
    from ltx_core.types import VideoPixelShape
    from torch.profiler import DeviceType, ProfilerActivity, profile

    from ltxcore.guidance import batched_perturbations, guidance_passes

    passes = guidance_passes(MultiModalGuider(params=GUIDER.to_upstream()))
    shape = VideoPixelShape(1, REFERENCE.num_frames, REFERENCE.height // 2, REFERENCE.width // 2, REFERENCE.frame_rate)
    video, audio = synthetic_inputs(engine.transformer, shape, len(passes))
    perturbations = batched_perturbations(passes)
    with torch.inference_mode():
        for _ in range(2):
            engine.transformer(video=video, audio=audio, perturbations=perturbations)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            engine.transformer(video=video, audio=audio, perturbations=perturbations)
            torch.cuda.synchronize()
    events = prof.events() or []
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    launches = [
        e
        for e in events
        if e.name
        in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch")
    ]
    gemm_words = ("gemm", "xmma", "cutlass", "nvjet", "scaled_mm", "matmul")
    busy = sum(e.device_time for e in kernels)
    gemm = sum(e.device_time for e in kernels if any(w in e.name.lower() for w in gemm_words))
    attention = sum(e.device_time for e in kernels if "flash" in e.name.lower() or "fmha" in e.name.lower())
    top = {}
    for e in kernels:
        top[e.name[:80]] = top.get(e.name[:80], 0.0) + e.device_time
    return {
        "gpu_kernels": len(kernels),
        "launch_calls": len(launches),
        "graph_launches": sum(e.name == "cudaGraphLaunch" for e in launches),
        "gpu_busy_ms": busy / 1e3,
        "gemm_share": gemm / busy,
        "attention_share": attention / busy,
        "top_kernels_ms": {k: v / 1e3 for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]},
    }


def measure_ours(folder: Path, clips: int, out: Path) -> dict:
    report: dict = {"part": "ours", "quantization": "fp8-scaled", "compile": True}
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    engine = Engine(ModelBundle.from_folder(folder, quantization="fp8-scaled"), "cuda", compile=True)
    report["load_s"] = time.perf_counter() - start
    report["load_peak_gib"] = torch.cuda.max_memory_allocated() / GIB
    report["load_breakdown_s"] = engine.load_seconds
    torch.cuda.reset_peak_memory_stats()
    report["warm_up_s"] = engine.warm_up(reference_request(0))
    report["warm_up_peak_gib"] = torch.cuda.max_memory_allocated() / GIB
    report["actor_ready_s"] = report["load_s"] + report["warm_up_s"]
    report["resident_gib_after_load"] = torch.cuda.memory_allocated() / GIB

    requests = [reference_request(i) for i in range(clips + 1)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    engine.warm_prompts([(r.prompt, r.negative_prompt) for r in requests])  # as a worker does per shard
    torch.cuda.synchronize()
    report["shard_prompt_encode_s"] = time.perf_counter() - start
    report["shard_prompt_encode_prompts"] = len(requests) + 1
    report["shard_prompt_encode_peak_gib"] = torch.cuda.max_memory_allocated() / GIB

    walls, phases, peaks, latents = [], [], [], {}
    for i, request in enumerate(requests):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = engine.render(request, out.parent / f"ours-{i}.mp4", keep_latent=i == 1)
        wall = time.perf_counter() - start
        if i == 0:
            report["first_clip_wall_s"] = wall
            continue
        walls.append(wall)
        phases.append(result.timings)
        peaks.append({k: v / GIB for k, v in result.peak_memory.items()})
        if result.video_latent is not None:
            latents["fp8-scaled"] = result.video_latent.float().cpu()
    report["clips"] = clips
    report["wall_s_median"] = statistics.median(walls)
    report["wall_s_all"] = walls
    report["phases_s_median"] = medians(phases)
    report["stage_1_step_s"] = report["phases_s_median"]["stage_1"] / REFERENCE.num_inference_steps
    report["peak_gib_by_phase_max"] = {k: max(p[k] for p in peaks) for k in peaks[0]}
    report["peak_gib"] = max(report["peak_gib_by_phase_max"].values())
    report["steady_s_per_clip"] = steady_state(engine, requests[1:], out.parent, "ours-steady")["steady_s_per_clip"]
    report["clips_per_hour"] = 3600 / report["steady_s_per_clip"]
    report["draft"] = measure_draft(engine, requests, out, report)
    report["profile_stage_1_forward"] = profile_stage_1(engine)
    del engine
    gc.collect()
    torch.cuda.empty_cache()

    all_fp8 = Engine(ModelBundle.from_folder(folder, quantization="none"), "cuda")  # eager: for its error only
    quantize_blocks(all_fp8.transformer.velocity_model, bf16_edge_blocks=0)  # the engine keeps 4 + 4 in bf16
    all_fp8.warm_up(reference_request(0))
    result = all_fp8.render(requests[1], None, keep_latent=True)
    report["fp8_bf16_edges_0_clip_timings_s"] = result.timings
    assert result.video_latent is not None
    latents["fp8-scaled-bf16-edges-0"] = result.video_latent.float().cpu()
    del all_fp8, result
    gc.collect()
    torch.cuda.empty_cache()

    bf16 = Engine(ModelBundle.from_folder(folder, quantization="none"), "cuda")
    result = bf16.render(requests[1], None, keep_latent=True)
    report["bf16_eager_clip_timings_s"] = result.timings
    assert result.video_latent is not None
    reference = result.video_latent.float().cpu()
    for name, latent in latents.items():
        report[f"{name}_vs_bf16_final_latent_rel_error"] = ((latent - reference).norm() / reference.norm()).item()
    report["flops"] = transformer_flops(bf16, passes=4)  # counted eagerly; the FLOPs are the same
    transformer_s = report["phases_s_median"]["stage_1"] + report["phases_s_median"]["stage_2"]
    report["effective_tflops"] = report["flops"]["tflop_per_clip"] / transformer_s
    return report


def measure_head(folder: Path, clips: int, out: Path, anchor: str) -> dict:
    """Upstream 1.2.0 through the anchor's own script, in its own environment: ``anchor`` is a copy of
    ``shared/anchors/upstream-head`` (script and ``wheels/``, plus the av wheel), installed to a temp site."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    site = tempfile.mkdtemp(prefix="head-site-")
    wheels = sorted(str(p) for p in Path(anchor).rglob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--target",
            site,
            *wheels,
        ],
        check=True,
    )
    script = Path(anchor) / "bench_upstream_head.py"
    report_path = out.parent / "head-report.json"
    env = {**os.environ, "PYTHONPATH": site, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    command = [
        sys.executable,
        str(script),
        "--bundle",
        str(folder),
        "--clips",
        str(clips),
        "--audio",
        str(AUDIO),
        "--image",
        str(IMAGE),
        "--compile",
        "on",
        "--out",
        str(report_path),
    ]
    subprocess.run(command, env=env, check=True)
    return {"part": "head", "command": " ".join(command), **json.loads(report_path.read_text())}


def measure_upstream(folder: Path, clips: int, out: Path) -> dict:
    """Upstream's pipeline object called once per clip, as its CLI does, plus its own mp4 writer."""
    from types import SimpleNamespace

    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_core.model.video_vae import TilingConfig, get_video_chunks_number
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator
    from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage
    from ltx_pipelines.utils.args import ImageConditioningInput
    from ltx_pipelines.utils.media_io import encode_video

    bundle = ModelBundle.from_folder(folder)
    config = bundle.gemma_config()  # upstream hard-codes Gemma-3 12B's config; ours has 6 of its 48 layers
    encoder_configurator.GEMMA3_CONFIG_FOR_LTX = SimpleNamespace(
        to_dict=lambda: config, text_config=SimpleNamespace(**config["text_config"])
    )
    pipeline = A2VidPipelineTwoStage(
        checkpoint_path=bundle.checkpoint_path,
        distilled_lora=[LoraPathStrengthAndSDOps(bundle.distilled_lora, 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
        spatial_upsampler_path=bundle.spatial_upsampler_path,
        gemma_root=bundle.gemma_root,
        loras=[],
        device=torch.device("cuda"),
    )
    tiling = TilingConfig.default()
    frames = REFERENCE.num_frames
    walls = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(clips):
        request = reference_request(i + 1)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            video, audio = pipeline(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                seed=request.seed,
                height=request.height,
                width=request.width,
                num_frames=frames,
                frame_rate=request.frame_rate,
                num_inference_steps=request.num_inference_steps,
                video_guider_params=request.guider.to_upstream(),
                images=[ImageConditioningInput(str(IMAGE), 0, 1.0)],  # pyright: ignore[reportArgumentType]  # 1.0.0's hint
                audio_path=str(AUDIO),
                audio_max_duration=frames / request.frame_rate,
                tiling_config=tiling,
            )
            encode_video(
                video=video,
                fps=round(request.frame_rate),
                audio=audio,
                output_path=str(out.parent / f"up-{i}.mp4"),
                video_chunks_number=get_video_chunks_number(frames, tiling),
            )
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        print(f"upstream clip {i}: {walls[-1]:.1f} s", flush=True)
    return {
        "part": "upstream",
        "quantization": "none (bf16, upstream default)",
        "clips": clips,
        "wall_s_median": statistics.median(walls),
        "wall_s_all": walls,
        "clips_per_hour": 3600 / statistics.median(walls),
        "peak_gib": torch.cuda.max_memory_allocated() / GIB,
    }


def run(bundle: str, part: str, clips: int, out: Path, anchor: str | None = None, transformer: str = "dev") -> dict:
    folder, made_s = ensure_bundle(Path(bundle))
    write_stereo_speech()
    if part == "head":
        if anchor is None:
            raise SystemExit("--part head needs --anchor DIR (the upstream-head anchor folder)")
        report = measure_head(folder, clips, out, anchor)
    elif part == "lora":
        from tools.bench_lora import measure_lora

        report = measure_lora(folder, clips)
    elif part == "worker":
        from tools.bench_worker import measure_worker

        report = measure_worker(folder, clips, out, transformer)
    else:
        report = (measure_ours if part == "ours" else measure_upstream)(folder, clips, out)
    report.update(device=torch.cuda.get_device_name(), torch=torch.__version__, bundle_written_s=made_s)
    return report
