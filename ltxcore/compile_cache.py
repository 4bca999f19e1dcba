"""Compile artifacts shared between workers and runs, so that only the first worker of a cluster pays for
compiling the transformer.

After its warm-up a worker that compiled something writes ``torch.compiler.save_cache_artifacts()`` (inductor's
FX graphs with their Triton kernels, AOTAutograd entries, autotune results) to one file in the artifact cache
(``ltxcore.artifacts``: a folder or object storage the user chose, else the node's own); a later worker, of this
run or another, loads it into its own inductor cache before warming up, and its compiles become cache hits. The
file is named by a :class:`CompileKey`, and carries the key it was written for: a different torch, CUDA, GPU,
bundle (its files' identity), quantization, transformer or set of warm-up shapes never loads it. Torch's own
cache keys would refuse most mismatches too; ours makes the refusal visible (a log line) and cheap (no download).
Cache I/O never fails a worker: a worker that cannot read or write the cache compiles, logs, and goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch._dynamo.utils

from ltxcore.artifacts import ArtifactCache
from ltxcore.request import RenderRequest
from storage.fs import exists, join, read_bytes, write_bytes

if TYPE_CHECKING:
    from ltxcore.engine import Engine

log = logging.getLogger(__name__)
FORMAT = 1  # of the file: a length-prefixed JSON key, then torch's artifact bytes
HEADER = struct.Struct("<I")
MISS_COUNTERS = (("inductor", "fxgraph_cache_miss"), ("aot_autograd", "autograd_cache_miss"))


@dataclass(frozen=True)
class CompileKey:
    """Everything a worker's compiled graphs depend on, beyond the model code: what must match to load them."""

    torch: str
    cuda: str  # "cpu" off the GPU
    cudnn: str
    triton: str
    device: str  # the GPU's name, or the CPU's architecture and vector ISA
    capability: str
    quantization: str
    transformer: str
    shapes: str  # digest of the warm-up requests' compile-relevant fields (``request_shapes``)
    bundle: str  # ``ArtifactCache.bundle``: the digest of the bundle's identity (its files, quantization, transformer)

    @classmethod
    def of(
        cls, device: torch.device, quantization: str, transformer: str, shapes: Sequence[dict], bundle: str
    ) -> CompileKey:
        text = json.dumps(list(shapes), sort_keys=True, default=repr)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        identity = runtime_identity(device)
        return cls(**identity, quantization=quantization, transformer=transformer, shapes=digest, bundle=bundle)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]

    def file_uri(self, folder: str) -> str:
        return join(folder, f"{self.digest()}.bin")


def runtime_identity(device: torch.device) -> dict[str, str]:
    """The torch build and the device a graph was compiled for."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return {
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()),
            "triton": triton_version,
            "device": torch.cuda.get_device_name(device),
            "capability": f"{major}.{minor}",
        }
    return {
        "torch": torch.__version__,
        "cuda": "cpu",
        "cudnn": "cpu",
        "triton": triton_version,
        "device": f"{device.type}-{platform.machine()}",
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def request_shapes(request: RenderRequest) -> dict:
    """What of a warm-up request decides the graphs ``Engine.warm_up`` compiles: its frame size (not its length:
    the token axes are symbolic, ``ltxcore.blocks``), its pipeline's stage-1 batch (the guider), its LoRAs and
    strengths. Prompts, seeds and media do not."""
    return {
        "pipeline": request.pipeline,
        "height": request.height,
        "width": request.width,
        "frame_rate": request.frame_rate,
        "guider": asdict(request.guider),
        "distilled_lora_strength": request.distilled_lora_strength,
        "loras": [(lora.path, lora.strength) for lora in request.loras],
    }


def cache_misses() -> int:
    """Compiles this process did not find in a cache so far (inductor FX graphs and AOTAutograd entries)."""
    counters = torch._dynamo.utils.counters
    return sum(counters[group][name] for group, name in MISS_COUNTERS)


@dataclass(frozen=True)
class CacheLoad:
    """What :func:`load` found: ``hit`` when artifacts of exactly this key were loaded."""

    hit: bool
    reason: str
    misses_before: int  # ``cache_misses()`` when loaded: a warm-up that adds to it compiled something new


def load(folder: str, key: CompileKey) -> CacheLoad:
    """Load the artifacts of ``key`` from ``folder`` into this process's inductor cache, before any compile."""
    uri = key.file_uri(folder)
    misses = cache_misses()
    try:
        if not exists(uri):
            return _told(CacheLoad(False, f"no compile cache for this worker at {uri} ({_describe(key)})", misses))
        data = read_bytes(uri)
        (length,) = HEADER.unpack_from(data)
        stored = json.loads(data[HEADER.size : HEADER.size + length])
        if stored != {"format": FORMAT, **asdict(key)}:
            return _told(CacheLoad(False, f"{uri} was written for another key ({stored}); not loaded", misses))
        info = torch.compiler.load_cache_artifacts(data[HEADER.size + length :])
    except Exception as e:  # a cache that cannot be read costs a compile, never the worker
        return _told(CacheLoad(False, f"compile cache {uri} not loaded ({type(e).__name__}: {e})", misses))
    if info is None:
        return _told(CacheLoad(False, f"compile cache {uri} held no artifacts torch could read", misses))
    count = sum(len(artifacts) for artifacts in info.artifacts.values())
    return _told(CacheLoad(True, f"loaded {count} compile artifacts from {uri}", misses))


def save(folder: str, key: CompileKey, loaded: CacheLoad) -> bool:
    """Write this process's artifacts for ``key`` if it compiled anything since ``loaded`` (a worker that only
    hit the cache leaves the file as it is). Atomic; an I/O error is logged, not raised. True when written."""
    if cache_misses() == loaded.misses_before:
        return False
    uri = key.file_uri(folder)
    try:
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            log.info("compile cache: nothing to save to %s", uri)
            return False
        header = json.dumps({"format": FORMAT, **asdict(key)}, sort_keys=True).encode()
        write_bytes(uri, HEADER.pack(len(header)) + header + saved[0])
    except Exception as e:
        log.warning("compile cache not saved to %s (%s: %s); later workers compile again", uri, type(e).__name__, e)
        return False
    log.info("compile cache: saved %d bytes to %s", len(saved[0]), uri)
    return True


def key_for(cache: ArtifactCache, engine: Engine, warm: Sequence[RenderRequest]) -> CompileKey:
    """The key of what ``engine`` compiles when warmed up with ``warm``."""
    every = (request_shapes(r) for r in warm)
    unique = {json.dumps(shape, sort_keys=True, default=repr): shape for shape in every}  # one per graph set
    shapes = [unique[text] for text in sorted(unique)]
    return CompileKey.of(engine.device, engine.bundle.quantization, engine.bundle.transformer, shapes, cache.bundle)


def warm_up_shared(
    cache: ArtifactCache, engine: Engine, warm: Sequence[RenderRequest], warm_up: Callable[[RenderRequest], float]
) -> tuple[bool, float]:
    """A worker's warm-up through the artifact cache: load the artifacts of these warm-up requests from
    ``cache``, run ``warm_up`` on each, save what was compiled. Returns (loaded a cache, warm-up seconds)."""
    key = key_for(cache, engine, warm)
    loaded = load(cache.compile_folder, key)
    seconds = sum(warm_up(request) for request in warm)
    save(cache.compile_folder, key, loaded)
    return loaded.hit, seconds


def _describe(key: CompileKey) -> str:
    return (
        f"torch {key.torch}, {key.device} {key.capability}, bundle {key.bundle}, {key.quantization}, "
        f"{key.transformer}, shapes {key.shapes}"
    )


def _told(result: CacheLoad) -> CacheLoad:
    log.info("compile cache %s: %s", "hit" if result.hit else "miss", result.reason)
    return result
