"""The model bundle: released file names, version metadata, and refusals that name the file."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fixtures.random_bundle import CHECKPOINT_PREFIXES
from ltxcore.bundle import RELEASED_NAMES, ModelBundle
from ltxcore.errors import BundleError
from ltxcore.loading import COMPONENTS, build_component


def _copy(bundle: ModelBundle, tmp_path) -> ModelBundle:
    folder = tmp_path / "copy"
    shutil.copytree(bundle.checkpoint_path.rsplit("/", 1)[0], folder)
    return ModelBundle.from_folder(folder)


def test_tiny_bundle_is_small_and_in_released_format(tiny_bundle):
    with safe_open(tiny_bundle.checkpoint_path, "pt") as f:
        keys = list(f.keys())
        assert f.get_tensor(keys[0]).dtype == torch.bfloat16
    for prefix in ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.", "text_embedding_projection."):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert tiny_bundle.model_version().startswith("2.3")
    with safe_open(tiny_bundle.distilled_lora, "pt") as f:
        assert all(".lora_A." in k or ".lora_B." in k for k in f.keys())
    total = sum(f.stat().st_size for f in tiny_bundle_files(tiny_bundle))
    assert total < 25 * 2**20


def tiny_bundle_files(bundle):
    from pathlib import Path

    return [p for p in Path(bundle.checkpoint_path).parent.rglob("*") if p.is_file()]


def test_generator_is_deterministic(tiny_bundle, tmp_path):
    from fixtures.random_bundle import make_tiny_bundle

    again = make_tiny_bundle(tmp_path / "again", seed=0)  # the session's bundle was made with seed 0
    with safe_open(tiny_bundle.checkpoint_path, "pt") as fa, safe_open(again.checkpoint_path, "pt") as fb:
        assert fa.keys() == fb.keys()
        assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_component_loads_its_own_weights_through_upstream_builders(tiny_bundle, name):
    """Every parameter of the built component is one of the file's tensors under the component's prefix (random
    weights are all different), so a key mapping that left a layer at its initial values would fail."""
    model = build_component(tiny_bundle, name, torch.device("cpu"))
    path = tiny_bundle.spatial_upsampler_path if name == "spatial_upsampler" else tiny_bundle.checkpoint_path
    prefix = CHECKPOINT_PREFIXES.get(name, "")
    with safe_open(path, "pt") as f:
        stored = {_digest(f.get_tensor(k)) for k in f.keys() if k.startswith(prefix)}
    loaded = [(n, _digest(t)) for n, t in model.named_parameters() if t.numel() > 1]
    assert loaded and [n for n, digest in loaded if digest not in stored] == []


def _digest(tensor: torch.Tensor) -> tuple:
    values = tensor.detach().to(torch.bfloat16).float().flatten()
    return tuple(values.shape) + (round(values.sum().item(), 3), round(values.abs().max().item(), 4))


def test_missing_file_is_named(tiny_bundle, tmp_path):
    _copy(tiny_bundle, tmp_path)  # the complete copy loads
    missing = tmp_path / "copy" / RELEASED_NAMES["spatial_upsampler_path"]
    missing.unlink()
    with pytest.raises(BundleError, match=f"spatial_upsampler_path {re.escape(str(missing))} does not exist"):
        ModelBundle.from_folder(tmp_path / "copy")


def test_pickle_or_garbage_is_not_loaded(tiny_bundle, tmp_path):
    _copy(tiny_bundle, tmp_path)
    (tmp_path / "copy" / RELEASED_NAMES["distilled_lora"]).write_bytes(b"\x80\x04\x95 pickle bytes, not safetensors")
    with pytest.raises(BundleError, match="distilled_lora .*not a safetensors file"):
        ModelBundle.from_folder(tmp_path / "copy")


def test_checkpoint_missing_keys_is_refused_not_left_on_meta(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    with safe_open(bundle.checkpoint_path, "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if "transformer_blocks.1.attn1.to_q" not in k}
    save_file(tensors, bundle.checkpoint_path, metadata=metadata)
    with pytest.raises(BundleError, match=r"ltx-2.3-22b-dev.safetensors is missing weights for the transformer"):
        build_component(bundle, "transformer", torch.device("cpu"))
