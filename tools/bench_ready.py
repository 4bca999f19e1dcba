"""How soon is a worker ready? (``python -m tools.bench ready``)

Two workers, one after the other, each a fresh process with an empty inductor and Triton cache of its own (as
a new machine has): load the fp8-scaled engine with compilation, then warm up through the shared compile cache
as ``RenderActor`` does (``compile_cache.warm_up_shared``: the reference clip's final and draft shapes). The
first finds no shared cache and compiles (cold); the second loads what the first saved. Ready = load + warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tools.reference_clip import ensure_bundle, reference_request, write_stereo_speech


def run(bundle: str, out: Path) -> dict:
    folder, made_s = ensure_bundle(Path(bundle))
    write_stereo_speech()
    shared = out.parent / "compile-cache"
    report: dict = {"bundle_written_s": made_s, "workers": []}
    for worker in ("cold", "shared cache"):
        own = tempfile.mkdtemp(prefix="ltx-bench-ready-")  # this worker's local caches start empty
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{own}/inductor", "TRITON_CACHE_DIR": f"{own}/triton"}
        code = [sys.executable, "-m", "tools.bench_ready", str(folder), str(shared)]
        done = subprocess.run(code, env=env, capture_output=True, text=True, check=True)
        row = {"worker": worker, **json.loads(done.stdout.strip().splitlines()[-1])}
        report["workers"].append(row)
        print(json.dumps(row), flush=True)
    return report


def _one_worker(folder: str, shared: str) -> dict:
    import torch

    from ltxcore import compile_cache
    from ltxcore.artifacts import ArtifactCache
    from ltxcore.bundle import ModelBundle
    from ltxcore.engine import Engine
    from manifests.model_section import bundle_identity

    start = time.perf_counter()
    bundle = ModelBundle.from_folder(folder, quantization="fp8-scaled")
    engine = Engine(bundle, "cuda", compile=True)
    load_s = time.perf_counter() - start
    final = reference_request(0)
    warm = (final, replace(final, pipeline="distilled"))
    cache = ArtifactCache.of(shared, bundle_identity(bundle.paths(), "fp8-scaled"))
    hit, warm_up_s = compile_cache.warm_up_shared(cache, engine, warm, engine.warm_up)
    files = list(Path(cache.compile_folder).glob("*.bin"))
    return {
        "load_s": load_s,
        "warm_up_s": warm_up_s,
        "ready_s": time.perf_counter() - start,
        "cache_hit": hit,
        "cache_file_mib": sum(f.stat().st_size for f in files) / 2**20,
        "device": torch.cuda.get_device_name(),
    }


if __name__ == "__main__":  # one worker, in a process of its own
    print(json.dumps(_one_worker(sys.argv[1], sys.argv[2])))
