"""``fp8-compact``: ``fp8-scaled`` with the LoRA buffers in FP8: half the bytes of bf16, the branch within a few
percent of the bf16 branch, strength 0 still exactly no LoRA, and a user LoRA staged beside the distilled one
leaves the distilled ranks as they were. Other quantizations keep bf16 buffers (test_parity, test_loras)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from ltx_core.types import VideoPixelShape

from fixtures.random_bundle import write_random_lora
from ltxcore.adapters import FP8
from ltxcore.engine import DISTILLED, Engine
from ltxcore.guidance import synthetic_inputs

SHAPE = VideoPixelShape(1, 9, 64, 64, 25.0)


@pytest.fixture(scope="module")
def engines(tiny_bundle) -> dict[int, Engine]:
    return {fp8: Engine(replace(tiny_bundle, quantization="fp8-compact" if fp8 else "fp8-scaled")) for fp8 in (0, 1)}


def _buffer_bytes(engine: Engine) -> int:
    layers = engine.adapters.layers.values()
    return sum(layer.down.nbytes + layer.up.nbytes for layer in layers)


@torch.inference_mode()
def _forward(engine: Engine, strengths: dict[str, float]) -> torch.Tensor:
    torch.manual_seed(0)  # the same random inputs for every call
    video, audio = synthetic_inputs(engine.transformer, SHAPE, 1)
    with engine.adapters.active(strengths):
        denoised, _ = engine.transformer(video=video, audio=audio, perturbations=None)
    return denoised.float()


def test_fp8_buffers_hold_half_the_bytes_and_the_branch_stays_close(engines):
    plain, fp8 = engines[0], engines[1]
    assert {layer.down.dtype for layer in fp8.adapters.layers.values()} == {FP8}
    assert _buffer_bytes(fp8) * 2 == _buffer_bytes(plain)
    base = _forward(plain, {})
    assert torch.equal(_forward(fp8, {}), base)  # no adapter active: the base model, bit for bit
    assert torch.equal(_forward(fp8, {DISTILLED: 0.0}), base)  # strength 0 is no LoRA, exactly
    with_lora, with_fp8_lora = _forward(plain, {DISTILLED: 1.0}), _forward(fp8, {DISTILLED: 1.0})
    delta = (with_lora - base).norm()
    assert delta > 0.05 * base.norm()  # the LoRA matters in this forward
    # FP8 rounding (~3% a value, through 2 blocks: 11% of the delta here), not a different or misscaled LoRA (~100%)
    assert (with_fp8_lora - with_lora).norm() < 0.2 * delta


def test_a_staged_user_lora_keeps_the_fp8_distilled_ranks(engines, tiny_bundle, tmp_path):
    engine = engines[1]
    before = _forward(engine, {DISTILLED: 1.0})
    user = str(write_random_lora(tiny_bundle, tmp_path / "style.safetensors", 24, seed=3))
    engine.adapters.load(user)
    both = _forward(engine, {DISTILLED: 1.0, user: 0.8})  # the staged region grows: every buffer is rebuilt
    assert engine.adapters.capacity >= 24 and not torch.equal(both, before)
    assert torch.equal(_forward(engine, {DISTILLED: 1.0}), before)
