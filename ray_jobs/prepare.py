"""``ltx-batch prepare MANIFEST --bundle B [--cache URI]``: pay a worker's start-up once, ahead of a big run.

It loads one worker's model as the render of MANIFEST would (same bundle, quantization, transformer and
``--set``), so the FP8 transformer is quantized and written to the artifact cache (``ltxcore.artifacts``), and on
a GPU compiles and warms the run's warm-up requests (``ray_jobs.render.warm_requests``) and saves the compiled
graphs there too. Every worker of a later render with the same cache, bundle, torch and GPU kind then loads both
instead of making them. It runs in this process, on this machine's device: no Ray, no run folder.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import replace

import torch

from ltxcore import compile_cache
from ltxcore.artifacts import ArtifactCache
from ltxcore.bundle import SCALED_FP8, ModelBundle
from ltxcore.engine import Engine
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.request import RenderRequest
from manifests.load import ManifestError
from ray_jobs.render import EXIT_BAD_INPUT, EXIT_FAILED_ITEMS, EXIT_OK, warm_requests
from ray_jobs.run_options import RunOptions
from ray_jobs.submission import Submission, checked_plan
from ray_jobs.weights import localize
from storage.fs import StorageError, exists, local_copy

FP8_CAPABILITY = (8, 9)  # Ada and newer multiply in FP8: what ``render.default_quantization`` picks fp8-scaled for


def run_prepare(options: RunOptions) -> int:
    """Prepare the artifacts of ``options``' manifest and model; print what was written where. Exit code 0 when
    everything this device can make is in the cache."""
    device = options.workers.device
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    try:  # the model and the plan a render of these options would start with
        submission = Submission(options)
        new = checked_plan(submission, submission.model(local_quantization(device)), options.items.skip_invalid)
        model, planned = new.model, new.planned
        bundle = ModelBundle.from_paths(
            **localize(model.paths), quantization=model.quantization, transformer=model.transformer
        )
    except (ManifestError, BundleError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cache = ArtifactCache.of(options.workers.cache, model.identity)  # as ``RenderActor`` keys it
    warm = warm_requests(planned) if device == "cuda" and options.workers.compile else []
    print(f"artifact cache {cache.folder}: bundle {cache.bundle}, {model.quantization}, {model.transformer}, {device}")
    engine = Engine(bundle, device, compile=bool(warm), max_loras=options.workers.max_loras, artifacts=cache)
    weights_ok = _report_weights(engine)
    if device != "cuda":
        print("compiled graphs: no compile on CPU (workers compile on cuda only)")
        return EXIT_OK if weights_ok else EXIT_FAILED_ITEMS
    if not warm:
        print("compiled graphs: none (--no-compile)")
        return EXIT_OK if weights_ok else EXIT_FAILED_ITEMS
    key = compile_cache.key_for(cache, engine, warm)
    hit, seconds = compile_cache.warm_up_shared(cache, engine, warm, lambda r: _warm_up(engine, r))
    uri = key.file_uri(cache.compile_folder)
    shapes = ", ".join(f"{r.pipeline} {r.width}x{r.height}x{r.num_frames}" for r in warm)
    if hit:
        print(f"compiled graphs ({shapes}): already in {uri}; warm-up {seconds:.1f} s")
    elif exists(uri):
        print(f"compiled graphs ({shapes}): compiled in {seconds:.1f} s, wrote {uri}")
    else:
        print(f"compiled graphs ({shapes}): compiled in {seconds:.1f} s, but not saved to {uri} (see the log)")
        return EXIT_FAILED_ITEMS
    return EXIT_OK if weights_ok else EXIT_FAILED_ITEMS


def local_quantization(device: str) -> str:
    """What a render picks for a cluster of this machine's GPUs (``render.default_quantization``): ``fp8-scaled``
    where the GPU multiplies in FP8, else ``fp8-cast``; ``none`` on CPUs."""
    if device != "cuda":
        return "none"
    return "fp8-scaled" if torch.cuda.get_device_capability() >= FP8_CAPABILITY else "fp8-cast"


def _report_weights(engine: Engine) -> bool:
    """Print what became of the FP8 transformer; False when it should have been written and was not."""
    weights, quantization = engine.fp8_weights, engine.bundle.quantization
    if quantization not in SCALED_FP8:
        scaled = " or ".join(SCALED_FP8)
        print(f"FP8 weights: none to keep for quantization {quantization} (only {scaled} quantize at load)")
        return True
    assert weights is not None, "an engine given artifacts keeps what became of its FP8 transformer"
    if weights.loaded:
        print(f"FP8 weights: already in {weights.uri}")
    elif weights.saved:
        print(f"FP8 weights: quantized in {engine.load_seconds['fp8_quantize']:.1f} s, wrote {weights.uri}")
    else:
        print(f"FP8 weights: {weights.note}")
        return exists(weights.uri)
    return True


def _warm_up(engine: Engine, request: RenderRequest) -> float:
    """Warm up with the request's LoRAs (fetched when remote), as a worker does; without them when they cannot
    be read (the worker does the same, and such items fail later with their own message)."""
    try:
        with ExitStack() as stack:
            loras = tuple(replace(lora, path=stack.enter_context(local_copy(lora.path))) for lora in request.loras)
            return engine.warm_up(replace(request, loras=loras))
    except (RenderInputError, StorageError, OSError):
        return engine.warm_up(replace(request, loras=()))
