"""Our block loop against upstream's: per-block perturbation answers, STG prefix sharing, whole-block
compilation and the per-shape compile fallback (CPU)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import LTXModelConfigurator, X0Model
from ltx_core.types import VideoPixelShape

from fixtures.random_bundle import load_configs, random_model
from ltxcore.blocks import BlockLoop, BlockPerturbations, SharedPrefix, SharingPerturbations
from ltxcore.compile import CompiledWithFallback
from ltxcore.guidance import ISOLATE_MODALITY, synthetic_inputs

BLOCKS = 4
SHAPE = VideoPixelShape(1, 17, 64, 128, 25.0)


def _transformer(dtype: torch.dtype) -> X0Model:
    config = load_configs("tiny")["checkpoint_metadata_config"]
    config = {**config, "transformer": {**config["transformer"], "num_layers": BLOCKS}}
    model = random_model(lambda: LTXModelConfigurator.from_config(config), torch.Generator().manual_seed(0))
    return X0Model(model.eval().to(dtype))


def _inputs(x0: X0Model, dtype: torch.dtype, shape: VideoPixelShape = SHAPE):
    """Four rows as stage 1 stacks them: cond, uncond (other context), isolated, STG (cond's inputs)."""
    video, audio = synthetic_inputs(x0, shape, 4)

    def cast(modality):
        floats = {k: v.to(dtype) for k, v in vars(modality).items() if torch.is_tensor(v) and v.is_floating_point()}
        context = floats["context"]
        floats["context"] = torch.cat([context[:1], context[1:2], context[:1], context[:1]])
        return replace(modality, **floats)

    return cast(video), cast(audio)


def _rows(stg_blocks: list[int] | None) -> list[PerturbationConfig]:
    stg = [Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, stg_blocks)] if stg_blocks is not None else []
    return [
        PerturbationConfig([]),
        PerturbationConfig([]),
        PerturbationConfig(list(ISOLATE_MODALITY)),
        PerturbationConfig(stg),
    ]


@pytest.fixture(scope="module")
def models():
    return {dtype: (x0 := _transformer(dtype), _inputs(x0, dtype)) for dtype in (torch.bfloat16, torch.float32)}


def _plain_row_noise(x0, video, audio) -> float:
    """How far two identical rows of one plain upstream forward differ: on the CPU in fp32 a row's bits
    depend on its place in the batch (the BLAS tiles the rows), so upstream's own batched forward is not
    bit-stable per row there; in bf16 it is (0)."""
    out, _ = x0(video, audio, BatchedPerturbationConfig(_rows(None)))
    return (out[0] - out[3]).abs().max().item()


@pytest.mark.parametrize(
    ("dtype", "stg_blocks"),
    [(torch.bfloat16, [2]), (torch.bfloat16, [1, 3])] + [(torch.float32, b) for b in ([2], [0], None)],
)
@torch.inference_mode()
def test_shared_prefix_matches_upstreams_loop(models, dtype, stg_blocks):
    """bf16 (the engine's dtype): bit-identical. fp32: within upstream's own row-placement rounding."""
    x0, (video, audio) = models[dtype]
    rows = _rows(stg_blocks)
    noise = _plain_row_noise(x0, video, audio)
    assert noise == 0 if video.latent.dtype == torch.bfloat16 else noise < 1e-5
    model = x0.velocity_model
    upstream = type(model)._process_transformer_blocks.__get__(model)
    model.__dict__.pop("_process_transformer_blocks", None)
    expected, _ = x0(video, audio, BatchedPerturbationConfig(rows))
    first = min(stg_blocks) if stg_blocks else 0
    shared = SharingPerturbations(rows, shared=(SharedPrefix(source=0, copy=3, until=first),))
    assert torch.equal(x0(video, audio, shared)[0], expected)  # upstream's loop ignores the declaration

    seen = []
    model.transformer_blocks[0].register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["video"].x.shape[0]), with_kwargs=True
    )
    BlockLoop(model)
    try:
        # bf16: bit-identical. fp32: within the rows' rounding, which one sample can show as 0: a few ulps at least
        ulps = 0.0 if dtype == torch.bfloat16 else 8 * torch.finfo(dtype).eps * expected.abs().max().item()
        assert (x0(video, audio, shared)[0] - expected).abs().max().item() <= max(4 * noise, ulps)
        assert torch.equal(x0(video, audio, BatchedPerturbationConfig(rows))[0], expected)
    finally:
        model._process_transformer_blocks = upstream
        model.transformer_blocks[0]._forward_pre_hooks.clear()
    assert seen == [3 if first > 0 else 4, 4]  # the STG row skips the blocks before its first STG block


@pytest.mark.parametrize("stg_blocks", [[1, 3], None])
def test_block_answers_match_upstreams_config(stg_blocks):
    config = BatchedPerturbationConfig(_rows(stg_blocks))
    values = torch.zeros(4, 5, 6)
    for block in range(BLOCKS):
        view = BlockPerturbations.of(config, block, values.device, values.dtype)
        for kind in PerturbationType:
            assert view.all_in_batch(kind, -1) == config.all_in_batch(kind, block)
            assert view.any_in_batch(kind, -1) == config.any_in_batch(kind, block)
            assert torch.equal(view.mask_like(kind, -1, values), config.mask_like(kind, block, values))


@torch.inference_mode()
def test_compiled_blocks_share_graphs_across_blocks_and_give_the_same_numbers():
    from torch._dynamo.utils import counters

    x0 = _transformer(torch.bfloat16)
    video, audio = _inputs(x0, torch.bfloat16)
    rows = _rows([2])
    shared = SharingPerturbations(rows, shared=(SharedPrefix(source=0, copy=3, until=2),))
    expected, _ = x0(video, audio, BatchedPerturbationConfig(rows))
    torch._dynamo.reset()
    counters.clear()
    BlockLoop(x0.velocity_model, compile=True, backend="eager")
    assert torch.equal(x0(video, audio, shared)[0], expected)
    assert torch.equal(x0(video, audio, shared)[0], expected)
    # 4 blocks, 2 layouts: the 3-row prefix (blocks 0-1), the 4-row STG block 2, the 4-row block 3;
    # one graph each, not one per block index
    assert counters["stats"]["unique_graphs"] == 3


def test_a_failed_compile_falls_back_to_eager_for_that_shape_only(caplog):
    compiled_shapes = []

    def backend(graph: torch.fx.GraphModule, example_inputs):
        shape = tuple(example_inputs[0].shape)
        if shape == (3,):
            raise RuntimeError("no C compiler on this worker")
        compiled_shapes.append(shape)
        return graph.forward

    calls = CompiledWithFallback(lambda x: x * 2 + 1, key=lambda x: tuple(x.shape), backend=backend)
    with caplog.at_level(logging.WARNING, logger="ltxcore.compile"):
        for _ in range(2):
            assert torch.equal(calls(torch.ones(3)), torch.full((3,), 3.0))
            assert torch.equal(calls(torch.ones(4)), torch.full((4,), 3.0))
    assert calls.eager_keys == {(3,)}
    assert compiled_shapes == [(4,)]
    failures = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(failures) == 1 and "(3,)" in failures[0].getMessage()


@pytest.mark.parametrize(("dynamic_tokens", "lengths"), [(True, [17, 49, 121]), (False, [17, 25])])
@torch.inference_mode()
def test_token_generic_blocks_compile_once_for_every_length(dynamic_tokens, lengths):
    """With symbolic token axes the blocks of a guided stage-1 batch compile one set of graphs at the first
    length, and every later clip length runs them with no new graph (and the same numbers as eager); one graph
    per length is what static compilation costs."""
    from torch._dynamo.utils import counters

    x0 = _transformer(torch.bfloat16)
    rows = _rows([2])
    shared = SharingPerturbations(rows, shared=(SharedPrefix(source=0, copy=3, until=2),))
    inputs = {}
    for frames in lengths:
        video, audio = _inputs(x0, torch.bfloat16, VideoPixelShape(1, frames, SHAPE.height, SHAPE.width, SHAPE.fps))
        inputs[frames] = (video, audio, x0(video, audio, BatchedPerturbationConfig(rows))[0])
    torch._dynamo.reset()
    counters.clear()
    BlockLoop(x0.velocity_model, compile=True, backend="eager", dynamic_tokens=dynamic_tokens)
    graphs = []
    for frames in lengths:
        video, audio, expected = inputs[frames]
        assert torch.equal(x0(video, audio, shared)[0], expected)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == ([3] * len(lengths) if dynamic_tokens else [3 * (i + 1) for i in range(len(lengths))])


@torch.inference_mode()
def test_a_token_generic_block_whose_compile_failed_is_not_compiled_again_at_another_length():
    x0 = _transformer(torch.bfloat16)
    attempts = []

    def backend(graph: torch.fx.GraphModule, example_inputs):
        attempts.append(len(example_inputs))
        raise RuntimeError("no C compiler on this worker")

    torch._dynamo.reset()
    BlockLoop(x0.velocity_model, compile=True, backend=backend, dynamic_tokens=True)
    for frames in (17, 49):
        video, audio = _inputs(x0, torch.bfloat16, VideoPixelShape(1, frames, SHAPE.height, SHAPE.width, SHAPE.fps))
        x0(video, audio, BatchedPerturbationConfig(_rows(None)))
        if frames == 17:
            tried = len(attempts)
    assert tried > 0 and len(attempts) == tried  # the second length ran eagerly at once
