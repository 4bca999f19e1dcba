"""fp8-scaled: per-row FP8 weights and per-token FP8 activations (numerics checked on the CPU)."""

from __future__ import annotations

import torch
from conftest import tiny_request

from ltxcore.fp8 import Fp8Linear, quantize_rows


def test_quantize_rows_round_trip_is_within_fp8_precision():
    torch.manual_seed(0)
    t = torch.randn(64, 256) * torch.logspace(-2, 2, 64)[:, None]  # rows of very different magnitude
    values, scale = quantize_rows(t)
    assert values.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    back = values.float() * scale
    assert ((back - t).norm(dim=1) / t.norm(dim=1)).max() < 0.04


def test_fp8_linear_matches_bf16_linear():
    torch.manual_seed(1)
    linear = torch.nn.Linear(256, 128).to(torch.bfloat16)
    x = torch.randn(3, 40, 256, dtype=torch.bfloat16)
    expected = linear(x).float()
    got = Fp8Linear(linear)(x).float()
    assert got.shape == expected.shape
    assert (got - expected).norm() / expected.norm() < 0.05


def test_engine_with_fp8_scaled_renders_close_to_bf16(tiny_bundle, engine, media):
    from dataclasses import replace

    from ltxcore.engine import Engine
    from ltxcore.fp8 import Fp8Linear as F

    request = tiny_request(
        media["stereo_wav"], prompt="p", width=192, num_frames=17, frame_rate=25.0, num_inference_steps=4
    )
    reference = engine.render(request, None, keep_latent=True).video_latent.float()
    fp8 = Engine(replace(tiny_bundle, quantization="fp8-scaled"))
    assert any(isinstance(m, F) for m in fp8.transformer.modules())
    latent = fp8.render(request, None, keep_latent=True).video_latent.float()
    error = ((latent - reference).norm() / reference.norm()).item()
    print(f"fp8-scaled vs bf16 final latent relative error (tiny random model): {error:.3e}")
    assert error < 0.1


def test_quantize_blocks_keeps_the_edge_blocks_in_bf16():
    from ltxcore.fp8 import quantize_blocks

    model = torch.nn.Module()
    model.transformer_blocks = torch.nn.ModuleList(
        torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 8)) for _ in range(16)
    )
    assert quantize_blocks(model, bf16_edge_blocks=4) == 8  # one aligned Linear in each of the middle 8
    kinds = [type(block[0]).__name__ for block in model.transformer_blocks]
    assert kinds == ["Linear"] * 4 + ["Fp8Linear"] * 8 + ["Linear"] * 4
    assert type(model.transformer_blocks[5][1]).__name__ == "Linear"  # 8 outputs: not a multiple of 16


def test_default_quantization_follows_the_cluster_gpus(monkeypatch):
    import ray

    from ray_jobs.render import default_quantization

    def cluster(*labels):
        monkeypatch.setattr(
            ray, "cluster_resources", lambda: {"GPU": 4, **{f"accelerator_type:{x}": 1 for x in labels}}
        )

    cluster("H100")
    assert default_quantization("cuda") == "fp8-scaled"
    cluster("H200", "T4")  # one card without FP8 GEMMs: stay with the portable policy
    assert default_quantization("cuda") == "fp8-cast"
    cluster()
    assert default_quantization("cuda") == "fp8-cast"
    assert default_quantization("cpu") == "none"
