"""The shared compile cache (CPU, inductor): a fresh process with an empty inductor cache loads the artifacts
of its own key and compiles from them (FX graph cache hits, no misses); another torch, device, bundle or warm-up
shape loads nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from ltxcore.compile_cache import CompileKey

WORKER = """
import json, sys, torch
from torch._dynamo.utils import counters
from ltxcore import compile_cache

folder, key_json, mode = sys.argv[1], sys.argv[2], sys.argv[3]
key = compile_cache.CompileKey(**json.loads(key_json))
loaded = compile_cache.load(folder, key)
fn = torch.compile(lambda x: torch.nn.functional.gelu(x * 2.0 + 1.0).sum(-1), dynamic=False)
fn(torch.randn(8, 16))
saved = compile_cache.save(folder, key, loaded) if mode == "save" else False
print(json.dumps({"hit": loaded.hit, "saved": saved, "fx_hit": counters["inductor"]["fxgraph_cache_hit"],
                  "fx_miss": counters["inductor"]["fxgraph_cache_miss"]}))
"""


def _worker(tmp_path: Path, key: CompileKey, mode: str, name: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / f"inductor-{name}")}  # empty: a fresh worker
    # Scalar C++ kernels: inductor's probe of the compiler for each vector ISA (a build and a python that imports
    # torch per ISA, about 20 s a worker) has nothing to do with the cache; both workers compile the same way.
    env["TORCHINDUCTOR_VEC_ISA_OK"] = "0"
    key_json = json.dumps(key.__dict__)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "shared"), key_json, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_later_worker_compiles_from_the_shared_cache_and_another_key_loads_nothing(tmp_path):
    import torch

    from ltxcore.compile_cache import load

    key = CompileKey.of(torch.device("cpu"), "none", "dev", [{"height": 512, "width": 768}], "bundle-a")
    cold = _worker(tmp_path, key, "save", "cold")
    assert cold == {"hit": False, "saved": True, "fx_hit": 0, "fx_miss": 1}
    later = _worker(tmp_path, key, "save", "later")
    assert later == {"hit": True, "saved": False, "fx_hit": 1, "fx_miss": 0}  # compiled from the loaded cache
    shared = tmp_path / "shared"
    other_shape = CompileKey.of(torch.device("cpu"), "none", "dev", [{"height": 512, "width": 704}], "bundle-a")
    other_bundle = CompileKey.of(torch.device("cpu"), "none", "dev", [{"height": 512, "width": 768}], "bundle-b")
    for other in (replace(key, torch="2.10.0"), replace(key, device="NVIDIA H100"), other_shape, other_bundle):
        assert not load(str(shared), other).hit
    renamed = replace(key, torch="2.10.0")  # a file of another key under this key's name is refused too
    (shared / f"{key.digest()}.bin").rename(shared / f"{renamed.digest()}.bin")
    assert "another key" in load(str(shared), renamed).reason
