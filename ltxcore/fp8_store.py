"""FP8-quantized transformers kept in the artifact cache (``ltxcore.artifacts``): only the first load of a bundle on
a kind of device reads the bf16 transformer and quantizes it (7.3 s of a 23.7 s load on an H200); later loads, by
any worker of any run, read the quantized state straight onto the device.

The file is the transformer's whole state after ``quantize_blocks`` (safetensors: FP8 weights with their scales,
the bf16 rest), named by a :class:`WeightsKey` and carrying it in its metadata. A load builds the transformer's
skeleton on the meta device (upstream's configurator, no weight read), swaps in the FP8 linears as
``quantize_blocks`` does, checks every stored name, shape and dtype against it, and assigns the tensors. A file
that is missing, unreadable, of another key or of another shape is logged and the worker quantizes as before,
then writes the file (atomically) for the next one. Cache I/O never fails a worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from ltx_core.model.transformer import LTXModel
from ltx_core.quantization import QuantizationPolicy
from safetensors import safe_open

from ltxcore.artifacts import ArtifactCache
from ltxcore.bundle import SCALED_FP8, ModelBundle
from ltxcore.fp8 import Fp8Linear, quantize_blocks
from ltxcore.loading import build_component, component_skeleton, refuse_meta
from ltxcore.safetensors_file import SAFETENSORS_DTYPES, save_safetensors
from storage.fs import exists, filesystem, is_uri, join, local_copy, write_with

log = logging.getLogger(__name__)
FORMAT = 1  # of the stored state: bump whenever ltxcore/fp8.py quantizes, rounds or lays out its buffers otherwise
BUILD_DTYPE = torch.bfloat16  # what ``build_component`` loads every transformer tensor in, before quantizing
TORCH_DTYPES = {name: dtype for dtype, name in SAFETENSORS_DTYPES.items()}
GIB = 1 << 30
FREE_MARGIN = 8 * GIB  # a local disk keeps this much free after the weights: the run's videos and windows need it
STALE_CLAIM_S = 3600  # a claim to write older than this was left by a worker that died while writing

Timed = Callable[[str, Callable[[], Any]], Any]


@dataclass(frozen=True)
class WeightsKey:
    """Everything a quantized transformer depends on beyond its bundle: what must match to load it."""

    bundle: str  # ``ArtifactCache.bundle``: the checkpoint files' identity, with quantization and transformer
    quantization: str
    transformer: str
    torch: str
    device: str  # the device kind: cuda or cpu
    capability: str  # the GPU's compute capability, or the CPU's vector ISA
    format: int = FORMAT

    @classmethod
    def of(cls, bundle_digest: str, bundle: ModelBundle, device: torch.device) -> WeightsKey:
        if device.type == "cuda":
            capability = "{}.{}".format(*torch.cuda.get_device_capability(device))
        else:
            capability = torch.backends.cpu.get_cpu_capability()
        return cls(bundle_digest, bundle.quantization, bundle.transformer, torch.__version__, device.type, capability)

    def metadata(self) -> dict[str, str]:
        """The key as the file's safetensors metadata (strings only)."""
        return {name: str(value) for name, value in asdict(self).items()}

    def file_uri(self, folder: str) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]
        return join(folder, f"{digest}.safetensors")


@dataclass(frozen=True)
class Fp8Weights:
    """Where a worker's FP8 transformer came from: ``loaded`` from the cache, else quantized (and ``saved``)."""

    loaded: bool
    saved: bool
    uri: str
    note: str  # what happened, for the log and ``ltx-batch prepare``


def quantization_policy(name: str) -> QuantizationPolicy | None:
    """Upstream's load-time policy: ``fp8-cast`` only; ``fp8-scaled`` quantizes after a bf16 load."""
    return QuantizationPolicy.fp8_cast() if name == "fp8-cast" else None


def build_transformer(
    bundle: ModelBundle, device: torch.device, cache: ArtifactCache | None, timed: Timed
) -> tuple[LTXModel, Fp8Weights | None]:
    """The bundle's transformer on ``device``, quantized as the bundle says. With ``cache``, a scaled-FP8 one is
    read from it when there, and written to it when quantized here. ``timed(name, build)`` runs each step."""
    if bundle.quantization not in SCALED_FP8:
        policy = quantization_policy(bundle.quantization)
        return timed("transformer", lambda: build_component(bundle, "transformer", device, quantization=policy)), None
    key = WeightsKey.of(cache.bundle, bundle, device) if cache else None
    uri = key.file_uri(cache.weights_folder) if cache and key else ""
    absent = False
    if key is not None:
        absent = not _exists(uri)
        model, note = timed("fp8_cached", lambda: load(uri, key, bundle, device))
        if model is not None:
            return model, Fp8Weights(True, False, uri, note)
    # fp8-scaled builds on the host and quantizes block by block on the way to the device
    model = timed("transformer", lambda: build_component(bundle, "transformer", torch.device("cpu")))
    timed("fp8_quantize", lambda: quantize_blocks(model, device=device))
    if key is None:
        return model, None
    if absent and _exists(uri):
        return model, Fp8Weights(False, False, uri, f"quantized; another worker wrote {uri} meanwhile")
    saved = timed("fp8_save", lambda: save(uri, key, model))
    note = f"quantized and saved to {uri}" if saved else f"quantized; not saved to {uri} (see the log)"
    return model, Fp8Weights(False, saved, uri, note)


def load(uri: str, key: WeightsKey, bundle: ModelBundle, device: torch.device) -> tuple[LTXModel | None, str]:
    """The quantized transformer stored at ``uri`` for ``key`` on ``device``, or None and why not (logged)."""
    try:
        if not exists(uri):
            return _told(None, f"no FP8 weights for this worker at {uri}; quantizing")
        with local_copy(uri) as path, safe_open(path, framework="pt", device=str(device)) as stored:
            if (stored.metadata() or {}) != key.metadata():
                return _told(None, f"{uri} was written for another key ({stored.metadata()}); not loaded")
            model = cast(LTXModel, component_skeleton(bundle, "transformer"))
            quantize_blocks(model)  # the FP8 linears, empty, where a fresh quantization puts them
            misfit = _misfit(_expected(model), stored)
            if misfit:
                return _told(None, f"{uri} does not fit this transformer ({misfit}); not loaded")
            model.load_state_dict({name: stored.get_tensor(name) for name in stored.keys()}, strict=True, assign=True)
        refuse_meta(model, "transformer", uri)
    except Exception as e:  # a cache that cannot be read costs a quantization, never the worker
        return _told(None, f"FP8 weights {uri} not loaded ({type(e).__name__}: {e}); quantizing instead")
    return _told(model.eval().requires_grad_(False), f"loaded the FP8 transformer from {uri}")


def save(uri: str, key: WeightsKey, model: torch.nn.Module) -> bool:
    """Write ``model``'s quantized state for ``key`` to ``uri``, atomically, unless another worker is writing it
    (local caches). An I/O error is logged, not raised. True when written."""
    if (room := _room_left(uri, model)) is not None:
        log.warning("FP8 weights not saved to %s: %s; later workers quantize again", uri, room)
        return False
    claim = _claim(uri)
    if claim is False:
        log.info("FP8 weights: another worker is writing %s; not written again", uri)
        return False
    try:
        write_with(uri, lambda path: save_safetensors(path, model.state_dict(), key.metadata()))
    except Exception as e:
        log.warning("FP8 weights not saved to %s (%s: %s); later workers quantize again", uri, type(e).__name__, e)
        return False
    finally:
        if isinstance(claim, Path):
            claim.unlink(missing_ok=True)
    log.info("FP8 weights: saved the quantized transformer to %s", uri)
    return True


def _room_left(uri: str, model: torch.nn.Module) -> str | None:
    """Why a local disk has no room for the weights with ``FREE_MARGIN`` left for the run's own files, or None."""
    if is_uri(uri) and not uri.startswith("file://"):  # object storage: no disk of ours fills
        return None
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    folder = Path(filesystem(uri)[1]).parent  # a file:// URI or a ~ path, as the write will see it
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free - size >= FREE_MARGIN:
        return None
    return f"{free / GIB:.1f} GiB free for {size / GIB:.1f} GiB, and {FREE_MARGIN / GIB:.0f} GiB must stay free"


def _expected(model: torch.nn.Module) -> dict[str, tuple[list[int], torch.dtype]]:
    """Name -> (shape, dtype) of the state a fresh quantization leaves: the FP8 linears' buffers as the skeleton
    has them, every other tensor in ``BUILD_DTYPE``."""
    out = {}
    for prefix, module in model.named_modules():
        for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            dtype = tensor.dtype if isinstance(module, Fp8Linear) else BUILD_DTYPE
            out[f"{prefix}.{name}" if prefix else name] = (list(tensor.shape), dtype)
    return out


def _misfit(expected: dict[str, tuple[list[int], torch.dtype]], stored) -> str:
    """The first difference between the expected state and a stored file's header; empty when it fits."""
    names = set(stored.keys())
    if names != set(expected):
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for name, (shape, dtype) in expected.items():
        got = stored.get_slice(name)
        if got.get_shape() != shape or TORCH_DTYPES.get(got.get_dtype()) != dtype:
            return f"{name} is {got.get_dtype()} {got.get_shape()}, expected {dtype} {shape}"
    return ""


def _exists(uri: str) -> bool:
    try:
        return exists(uri)
    except Exception:
        return False


def _claim(uri: str) -> Path | bool:
    """On a local cache, a marker only one writer can create (a stale one, of a writer that died, is taken over):
    its path, or False when another worker holds it. On object stores True: writers race, the last one wins."""
    if is_uri(uri) and not uri.startswith("file://"):
        return True
    marker = Path(filesystem(uri)[1] + ".writing")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        if marker.exists() and time.time() - marker.stat().st_mtime > STALE_CLAIM_S:
            marker.unlink(missing_ok=True)
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    except OSError:
        return True  # no marker can be made: write anyway (atomically), the cache stays consistent
    return marker


def _told(model: LTXModel | None, note: str) -> tuple[LTXModel | None, str]:
    log.info("FP8 weights %s: %s", "hit" if model is not None else "miss", note)
    return model, note
