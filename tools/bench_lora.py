"""GPU cost of a user LoRA at the reference clip (``BENCHMARKS.md``):

    python -m tools.bench clip --bundle /tmp/ref-bundle --part lora --out lora.json

The default engine (``fp8-scaled``, compiled, CUDA graphs) renders the reference clip (``reference_clip``)
without and with a random rank-32 LoRA on every block linear of the reference transformer, written once
beside the bundle (``user-lora-rank32.safetensors``, ~0.7 GB). Reported: the LoRA's first load and the
warm-up of its graphs, then per-phase medians over ``--clips`` clips each way (after one untimed clip),
the difference per phase, and the device memory the staged LoRA adds. Clips are rendered without decode
and mux: the LoRA costs transformer time only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from ltxcore.request import LoraSpec, RenderRequest
from tools.reference_clip import reference_request
from tools.timing import GIB, medians

LORA_RANK = 32
PHASES = ("stage_1", "stage_2")


def ensure_lora(bundle: ModelBundle, folder: Path) -> Path:
    """The random rank-32 LoRA on every block linear, written on first use."""
    from fixtures.random_bundle import write_random_lora

    path = folder / f"user-lora-rank{LORA_RANK}.safetensors"
    if not path.exists():
        device = "cuda" if torch.cuda.is_available() else "cpu"
        write_random_lora(bundle, path, LORA_RANK, seed=1, device=device)
    return path


def lora_cost(engine: Engine, requests: list[RenderRequest], lora: Path, strength: float = 1.0) -> dict:
    """``requests`` rendered without, then with the LoRA (the first of each untimed); medians and differences."""
    report: dict = {"lora": str(lora), "rank": LORA_RANK, "strength": strength, "clips": len(requests) - 1}
    with_lora = [replace(r, loras=(LoraSpec(str(lora), strength),)) for r in requests]
    report["lora_warm_up_s"] = engine.warm_up(with_lora[0])  # reads the file, stages it, compiles its graphs
    adapters = engine.adapters
    staged = sum(
        layer.down[: adapters.capacity].nbytes + layer.up[:, : adapters.capacity].nbytes
        for layer in adapters.layers.values()
    )
    report["staged_ranks"], report["staged_device_gib"] = adapters.capacity, staged / GIB
    for name, batch in (("without", requests), ("with", with_lora)):
        engine.render(batch[0], None)
        timings, peaks = [], []
        for request in batch[1:]:
            result = engine.render(request, None)
            timings.append({**result.timings, "total": sum(result.timings.values())})
            peaks.append(max(result.peak_memory.values(), default=0) / GIB)
        report[f"{name}_s_median"] = medians(timings)
        report[f"{name}_peak_gib"] = max(peaks)
    without, with_ = report["without_s_median"], report["with_s_median"]
    report["added_s"] = {phase: with_[phase] - without[phase] for phase in (*PHASES, "total")}
    transformer = sum(without[p] for p in PHASES)
    report["added_fraction_of_transformer"] = sum(report["added_s"][p] for p in PHASES) / transformer
    report["lora_reads"] = engine.adapters.reads  # on a fresh engine 1: read once, then kept
    return report


def measure_lora(folder: Path, clips: int) -> dict:
    bundle = ModelBundle.from_folder(folder, quantization="fp8-scaled")
    lora = ensure_lora(bundle, folder)
    engine = Engine(bundle, "cuda", compile=True)
    engine.warm_up(reference_request(0))
    requests = [reference_request(i) for i in range(clips + 1)]
    engine.warm_prompts([(r.prompt, r.negative_prompt) for r in requests])
    return {"part": "lora", "quantization": "fp8-scaled", "compile": True, **lora_cost(engine, requests, lora)}
