"""The FP8 transformer kept in the artifact cache (CPU, tiny bundle, ``fp8-scaled``): a later engine reads what the
first one quantized and computes bit-identically; another bundle, quantization or torch never loads it; a corrupt,
misfitting or unwritable file costs a quantization, never the worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from ltx_core.types import VideoPixelShape

from ltxcore.artifacts import ArtifactCache
from ltxcore.engine import Engine
from ltxcore.fp8 import Fp8Linear
from ltxcore.fp8_store import WeightsKey, load
from ltxcore.guidance import synthetic_inputs
from ltxcore.safetensors_file import save_safetensors

SHAPE = VideoPixelShape(1, 9, 64, 64, 25.0)


@pytest.fixture(scope="module")
def fp8_bundle(tiny_bundle):
    return replace(tiny_bundle, quantization="fp8-scaled")


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t  # torch.equal has no FP8 kernel on CPU


def _same_state(a: Engine, b: Engine) -> bool:
    sa, sb = a.transformer.state_dict(), b.transformer.state_dict()
    same_tensors = sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(_bits(sa[k]), _bits(sb[k])) for k in sa
    )
    return same_tensors and [type(m) for m in a.transformer.modules()] == [type(m) for m in b.transformer.modules()]


@torch.inference_mode()
def _forward(engine: Engine) -> torch.Tensor:
    torch.manual_seed(7)
    video, audio = synthetic_inputs(engine.transformer, SHAPE, 1)
    with engine.adapters.active({"distilled": 1.0}):
        return engine.transformer(video=video, audio=audio, perturbations=None)[0]


def _uri(engine: Engine) -> str:
    assert engine.fp8_weights is not None
    return engine.fp8_weights.uri


def test_a_later_engine_loads_the_cached_weights_and_computes_bit_identically(fp8_bundle, tmp_path):
    cache = ArtifactCache(str(tmp_path / "cache"), "bundle-a")
    fresh = Engine(fp8_bundle, artifacts=cache)
    assert fresh.fp8_weights is not None and fresh.fp8_weights.saved and not fresh.fp8_weights.loaded
    assert Path(_uri(fresh)).is_file() and "fp8_quantize" in fresh.load_seconds
    later = Engine(fp8_bundle, artifacts=cache)
    assert later.fp8_weights is not None and later.fp8_weights.loaded and not later.fp8_weights.saved
    assert "fp8_quantize" not in later.load_seconds and "transformer" not in later.load_seconds  # no bf16 read
    assert sum(isinstance(m, Fp8Linear) for m in later.transformer.modules()) > 0
    assert not any(p.requires_grad for p in later.transformer.parameters()) and not later.transformer.training
    assert _same_state(fresh, later)
    assert torch.equal(_forward(fresh), _forward(later))
    uncached = Engine(fp8_bundle)  # today's path, no cache: the same numbers
    assert uncached.fp8_weights is None and _same_state(uncached, later)


def test_another_bundle_quantization_or_torch_never_loads_them(fp8_bundle, tmp_path):
    cache = ArtifactCache(str(tmp_path / "cache"), "bundle-a")
    first = Engine(fp8_bundle, artifacts=cache)
    uri = _uri(first)
    other_bundle = Engine(fp8_bundle, artifacts=replace(cache, bundle="bundle-b"))
    compact = Engine(replace(fp8_bundle, quantization="fp8-compact"), artifacts=cache)
    for engine in (other_bundle, compact):
        assert engine.fp8_weights is not None and not engine.fp8_weights.loaded and _uri(engine) != uri
    key = WeightsKey.of(cache.bundle, fp8_bundle, torch.device("cpu"))
    assert key.file_uri(cache.weights_folder) == uri
    other_torch = replace(key, torch="2.10.0")
    assert other_torch.file_uri(cache.weights_folder) != uri
    renamed = other_torch.file_uri(cache.weights_folder)  # this key's file under the other key's name: refused
    Path(uri).rename(renamed)
    model, note = load(renamed, other_torch, fp8_bundle, torch.device("cpu"))
    assert model is None and "another key" in note


def test_a_corrupt_or_misfitting_file_falls_back_to_quantizing(fp8_bundle, tmp_path):
    cache = ArtifactCache(str(tmp_path / "cache"), "bundle-a")
    reference = Engine(fp8_bundle, artifacts=cache)
    path = Path(_uri(reference))
    data = path.read_bytes()
    key = WeightsKey.of(cache.bundle, fp8_bundle, torch.device("cpu"))
    state = reference.transformer.velocity_model.state_dict()
    dropped = dict(list(state.items())[1:])
    for corrupt in (data[: len(data) // 2], b"\0" * 64, None):
        if corrupt is None:  # the right key, but a tensor short
            save_safetensors(path, dropped, key.metadata())
        else:
            path.write_bytes(corrupt)
        engine = Engine(fp8_bundle, artifacts=cache)
        assert engine.fp8_weights is not None and not engine.fp8_weights.loaded, corrupt
        assert _same_state(reference, engine)
        assert engine.fp8_weights.saved and path.read_bytes() == data  # rewritten whole for the next worker
    assert Engine(fp8_bundle, artifacts=cache).fp8_weights.loaded  # pyright: ignore[reportOptionalMemberAccess]


def test_an_unwritable_cache_costs_nothing_but_the_file(fp8_bundle, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    engine = Engine(fp8_bundle, artifacts=ArtifactCache(str(blocked), "bundle-a"))
    assert engine.fp8_weights is not None and not engine.fp8_weights.saved and not engine.fp8_weights.loaded
    assert _same_state(engine, Engine(fp8_bundle))


def test_a_disk_that_would_be_left_too_full_gets_no_weights(fp8_bundle, tmp_path, monkeypatch):
    """The run's videos need room: a local cache that would keep less than ``FREE_MARGIN`` free is not written."""
    import shutil

    from ltxcore import fp8_store

    free = shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(fp8_store, "FREE_MARGIN", free)  # whatever the weights' size, too little would stay free
    engine = Engine(fp8_bundle, artifacts=ArtifactCache(f"file://{tmp_path / 'cache'}", "bundle-a"))
    assert engine.fp8_weights is not None and not engine.fp8_weights.saved
    assert not list(tmp_path.rglob("*.safetensors"))
    assert _same_state(engine, Engine(fp8_bundle))
