"""GPU benchmark of the full-size LTX-2.3 transformer (random weights, released config), side by side.

    python -m tools.bench forward --out forward.json

Builds the 19 B-parameter transformer from ``fixtures/bundle_configs/reference.json`` through upstream's
configurator, on the GPU, with random weights (timing does not depend on the values), then times one
forward at the reference clip's shapes (768x512 final, 97 frames at 25 fps: 1,248 video tokens at stage 1,
4,992 at stage 2, 97 audio tokens) for each variant, all in this one process:

- ``bf16``: eager, as upstream runs without quantization;
- ``fp8-cast``: upstream's policy (FP8 storage, upcast to bf16 on every call), eager;
- ``fp8-scaled``: ours, real FP8 GEMMs, eager and with compiled blocks; ``+tokens``: the compiled blocks'
  token axes symbolic (one graph for every length, ``ltxcore.compile``), against one graph per length.

With compiled blocks it also times the first stage-1 forward at another length (``NEW_FRAMES``): a compile for
a per-length graph, none for a token-generic one.

Per clip it reports the transformer time of upstream's loop (4 guidance passes one after another, 30
steps, plus 3 stage-2 steps) and of ours (one batched forward per step, stage 2 with the runtime LoRA),
the effective TFLOP/s of the linears, peak memory and compile time. Medians over ``--repeat`` runs.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from functools import partial
from typing import cast

import torch

from fixtures.random_bundle import load_configs, random_lora, random_model
from ltxcore.blocks import BlockLoop
from ltxcore.engine import DISTILLED
from tools.reference_clip import REFERENCE
from tools.timing import GIB

FPS, FRAMES, HEIGHT, WIDTH = REFERENCE.frame_rate, REFERENCE.num_frames, REFERENCE.height, REFERENCE.width
STEPS_1, STEPS_2, LORA_RANK = REFERENCE.num_inference_steps, 3, 384
NEW_FRAMES = 145  # a length the warm-up did not see


def build(variant: str, lora: bool):
    """The X0 transformer for ``variant``, on CUDA, with random weights (and a random rank-384 LoRA)."""
    from ltx_core.model.transformer import LTXModel, LTXModelConfigurator, X0Model
    from ltx_core.quantization import TRANSFORMER_LINEAR_DOWNCAST_MAP, UPCAST_DURING_INFERENCE

    from ltxcore.adapters import Adapters
    from ltxcore.fp8 import quantize_blocks
    from ltxcore.lora import DOWN, UP, LoraWeights

    config = load_configs("reference")["checkpoint_metadata_config"]
    generator = torch.Generator(device="cuda").manual_seed(0)
    make = LTXModelConfigurator.from_config  # pyright: ignore[reportAttributeAccessIssue]  # upstream's cls annotation
    model = cast(LTXModel, random_model(lambda: make(config), generator).eval())  # bf16 on the GPU
    adapter = None
    if lora:
        blocks = model.transformer_blocks.named_modules()
        linears = [
            (f"transformer_blocks.{name}.weight", (m.out_features, m.in_features))
            for name, m in blocks
            if isinstance(m, torch.nn.Linear)
        ]
        sd = random_lora(linears, LORA_RANK, generator)
    if variant == "fp8-cast":
        state = {}
        for key, value in model.state_dict().items():
            for new_key, new_value in TRANSFORMER_LINEAR_DOWNCAST_MAP.apply_to_key_value(key, value):
                state[new_key] = new_value
        model.load_state_dict(state, assign=True)
        model = cast(LTXModel, UPCAST_DURING_INFERENCE.mutator(model))
    elif variant.startswith("fp8-scaled"):
        quantize_blocks(model)
    if lora:
        adapter = Adapters(model, torch.bfloat16)
        stems = [key.removesuffix(DOWN) for key in sd if key.endswith(DOWN)]
        layers = {stem: (sd.pop(stem + DOWN), sd.pop(stem + UP)) for stem in stems}
        adapter.pin_weights(DISTILLED, LoraWeights("random-rank-384", layers, (0, 0, 0, 0)))
    return X0Model(model).eval(), adapter


def inputs(tokens_hw: tuple[int, int], batch: int, model, frames: int = FRAMES):
    """Upstream Modality inputs for the reference clip at one stage, ``batch`` guidance passes."""
    from ltx_core.types import VideoPixelShape

    from ltxcore.guidance import synthetic_inputs

    height, width = tokens_hw
    return synthetic_inputs(model, VideoPixelShape(1, frames, height, width, FPS), batch)


def linear_flops(model, video, audio) -> float:
    total = 0.0

    def count(module, args, _out):
        nonlocal total
        x = args[0]
        total += 2.0 * x.numel() / x.shape[-1] * module.in_features * module.out_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if hasattr(m, "in_features") and not any(True for _ in m.children())
    ]
    with torch.inference_mode():
        model(video=video, audio=audio, perturbations=None)
    for h in hooks:
        h.remove()
    return total


def time_forward(model, video, audio, repeat: int, warmup: int = 2) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(video=video, audio=audio, perturbations=None)
        times = []
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(video=video, audio=audio, perturbations=None)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def _warm(model, shapes, adapter) -> float:
    """Compile time: the first call of every shape (stage 2 with the LoRA on, as it runs)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        for video, audio in shapes[:-1]:
            model(video=video, audio=audio, perturbations=None)
        with adapter.active({DISTILLED: 1.0}) if adapter is not None else torch.inference_mode():
            model(video=shapes[-1][0], audio=shapes[-1][1], perturbations=None)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(variant: str, repeat: int) -> dict:
    model, adapter = build(variant.split("+")[0], lora=variant.startswith("fp8-scaled"))
    stage_1 = {b: inputs((HEIGHT // 2, WIDTH // 2), b, model) for b in (1, 4)}
    stage_2 = inputs((HEIGHT, WIDTH), 1, model)
    result: dict[str, object] = {"variant": variant}
    if "+compile" in variant:
        graphs = variant.endswith("+graphs")
        key = partial(getattr, adapter, "key") if adapter is not None else (lambda: None)
        tokens = "+tokens" in variant
        BlockLoop(model.velocity_model, compile=True, cuda_graphs=graphs, state_key=key, dynamic_tokens=tokens)
        result["compile_s"] = _warm(model, [stage_1[1], stage_1[4], stage_2], adapter)
    started = time.perf_counter()
    torch.cuda.reset_peak_memory_stats()
    result["s1_b1"] = time_forward(model, *stage_1[1], repeat)
    result["s1_b4"] = time_forward(model, *stage_1[4], repeat)
    if adapter is not None:
        with adapter.active({DISTILLED: 1.0}):
            result["s2_b1"] = time_forward(model, *stage_2, repeat)
    else:
        result["s2_b1"] = time_forward(model, *stage_2, repeat)
    result["first_pass_and_timing_seconds"] = time.perf_counter() - started
    if "+compile" in variant:
        other = inputs((HEIGHT // 2, WIDTH // 2), 4, model, NEW_FRAMES)
        torch.cuda.synchronize()
        first = time.perf_counter()
        with torch.inference_mode():
            model(video=other[0], audio=other[1], perturbations=None)
        torch.cuda.synchronize()
        result["new_length_first_call_s"] = time.perf_counter() - first
        result[f"s1_b4_{NEW_FRAMES}_frames"] = time_forward(model, *other, repeat)
    result["peak_gib"] = torch.cuda.max_memory_allocated() / GIB
    if variant == "bf16":
        result["linear_tflop_s1_b1"] = linear_flops(model, *stage_1[1]) / 1e12
        result["linear_tflop_s2_b1"] = linear_flops(model, *stage_2) / 1e12
    del model, adapter, stage_1, stage_2
    gc.collect()
    torch.cuda.empty_cache()
    return result


VARIANTS = ["bf16", "fp8-cast", "bf16+compile", "fp8-scaled", "fp8-scaled+compile", "fp8-scaled+compile+graphs"]
VARIANTS += ["fp8-scaled+compile+tokens", "fp8-scaled+compile+tokens+graphs"]


def run(variants: list[str], repeat: int) -> dict:
    rows = []
    for variant in variants:
        rows.append(measure(variant, repeat))
        print(json.dumps(rows[-1]), flush=True)
    by = {r["variant"]: r for r in rows}
    flops = by.get("bf16", {})
    summary = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows, "per_clip": {}}
    for r in rows:
        sequential = STEPS_1 * 4 * r["s1_b1"] + STEPS_2 * r["s2_b1"]
        batched = STEPS_1 * r["s1_b4"] + STEPS_2 * r["s2_b1"]
        entry = {"sequential_4_passes_s": sequential, "batched_s": batched}
        if flops:
            tf = STEPS_1 * 4 * flops["linear_tflop_s1_b1"] + STEPS_2 * flops["linear_tflop_s2_b1"]
            entry["linear_tflop_per_clip"] = tf
            entry["effective_tflops_batched"] = tf / batched
        summary["per_clip"][r["variant"]] = entry
    return summary
