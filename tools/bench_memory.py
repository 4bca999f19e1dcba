"""Does a final (and a draft) fit a 32 GB card? (``python -m tools.bench memory``)

The process's share of the GPU is capped first (``torch.cuda.set_per_process_memory_fraction``: the caching
allocator then refuses to hold more than ``cap_gib``, as a 32 GB card would), then one engine of
``quantization`` (``fp8-compact`` by default: the LoRAs in FP8 too) is loaded, warmed up and renders the
reference clip as a final and as a draft. Reported per step: peak allocated and peak reserved memory; an
out-of-memory error is reported with the step it hit, not raised. Afterwards, uncapped, the same final is
rendered by the ``fp8-scaled`` engine (bf16 LoRA buffers) and by the bf16 engine, and the final video latent's
relative error against bf16 is given for both: what storing the LoRA in FP8 costs in accuracy.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from tools.reference_clip import ensure_bundle, reference_request, write_stereo_speech

GIB = 2**30


def _peaks() -> dict[str, float]:
    return {
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
    }


def _step(report: dict, name: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` as step ``name`` of ``report``: its seconds and peaks, or the OOM that stopped it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        value = work()
    except torch.OutOfMemoryError as e:
        report[name] = {"oom": str(e).splitlines()[0], **_peaks()}
        print(json.dumps({name: report[name]}), flush=True)
        raise
    torch.cuda.synchronize()
    report[name] = {"seconds": time.perf_counter() - start, **_peaks()}
    print(json.dumps({name: report[name]}), flush=True)  # a run cut short still leaves its steps in the log
    return value


def _release_memory() -> None:
    """Give the device memory of what the caller has deleted back, before the next engine loads."""
    gc.collect()
    torch.cuda.empty_cache()


def capped(
    folder: Path, quantization: str, cap_gib: float, compile: bool, out: Path
) -> tuple[dict, torch.Tensor | None]:
    """One engine under the cap: load, warm-up, a final, a draft. Returns the final's latent."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_gib * GIB / total)
    report: dict = {"quantization": quantization, "cap_gib": cap_gib, "compile": compile}
    report["device_total_gib"] = total / GIB
    latent = None
    final, draft = reference_request(1), replace(reference_request(2), pipeline="distilled")
    try:
        bundle = ModelBundle.from_folder(folder, quantization=quantization)
        engine = _step(report, "load", lambda: Engine(bundle, "cuda", compile=compile))
        assert isinstance(engine, Engine)
        report["resident_gib_after_load"] = torch.cuda.memory_allocated() / GIB
        report["lora_buffer_gib"] = (
            sum(layer.down.nbytes + layer.up.nbytes for layer in engine.adapters.layers.values()) / GIB
        )
        _step(report, "warm_up_final", lambda: engine.warm_up(final))
        _step(report, "warm_up_draft", lambda: engine.warm_up(draft))
        _step(report, "prompts", lambda: engine.warm_prompts([(r.prompt, r.negative_prompt) for r in (final, draft)]))
        for name, request in (("final", final), ("draft", draft)):
            for take in (1, 2):  # the second is the steady state
                path = out / f"{name}.mp4"
                result = _step(report, f"{name}_{take}", lambda r=request, p=path: engine.render(r, p, True))
                report[f"{name}_{take}"]["phases_peak_gib"] = {k: v / GIB for k, v in result.peak_memory.items()}
                if name == "final":
                    latent = result.video_latent.float().cpu()
        report["fits"] = True
    except torch.OutOfMemoryError:
        report["fits"] = False
    torch.cuda.set_per_process_memory_fraction(1.0)
    return report, latent


def _final_latent(folder: Path, quantization: str) -> torch.Tensor:
    engine = Engine(ModelBundle.from_folder(folder, quantization=quantization), "cuda")
    latent = engine.render(reference_request(1), None, keep_latent=True).video_latent
    assert latent is not None
    latent = latent.float().cpu()
    del engine
    _release_memory()
    return latent


def run(bundle: str, quantization: str, cap_gib: float, compile: bool, out: Path) -> dict:
    folder, made_s = ensure_bundle(Path(bundle))
    write_stereo_speech()
    report, capped_latent = capped(folder, quantization, cap_gib, compile, out.parent)
    _release_memory()  # the capped engine went with ``capped``
    report["bundle_written_s"] = made_s
    report["device"] = torch.cuda.get_device_name()
    if capped_latent is None:
        return report
    scaled = _final_latent(folder, "fp8-scaled")
    reference = _final_latent(folder, "none")
    for name, latent in ((quantization, capped_latent), ("fp8-scaled", scaled)):
        report[f"{name}_vs_bf16_final_latent_rel_error"] = ((latent - reference).norm() / reference.norm()).item()
        print(json.dumps({name: report[f"{name}_vs_bf16_final_latent_rel_error"]}), flush=True)
    return report
