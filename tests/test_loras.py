"""User LoRAs in the engine: the runtime branch equals upstream's fused weights (fp32, CPU), strength 0 is no
LoRA bit for bit, files that do not fit are refused naming the layer, LoRAs are held least recently used
first, and compiled blocks (and the CUDA-graph key) follow the adapter set."""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest
import torch
from conftest import tiny_request
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator, X0Model
from ltx_core.types import VideoPixelShape

from fixtures.random_bundle import save_safetensors, write_random_lora
from ltxcore import engine as engine_module
from ltxcore import fp8_store, loading
from ltxcore.adapters import Adapters
from ltxcore.blocks import BlockLoop
from ltxcore.checkpoint_header import block_count, linear_shapes, transformer_shapes
from ltxcore.engine import DISTILLED, Engine
from ltxcore.errors import RenderInputError
from ltxcore.guidance import synthetic_inputs
from ltxcore.lora import LoraError
from ltxcore.request import LoraSpec, RenderRequest

ATTENTION = ("attn1.", "attn2.")


def _request(audio: str, **overrides) -> RenderRequest:
    return tiny_request(audio, **{"prompt": "A presenter in a painted style", "seed": 5, **overrides})


@pytest.fixture(scope="module")
def loras(tiny_bundle, tmp_path_factory) -> dict[str, str]:
    """fp32 files (upstream fuses in the file's dtype): one on attention only, one on every block linear."""
    folder = tmp_path_factory.mktemp("loras")
    return {
        "style": str(write_random_lora(tiny_bundle, folder / "style.safetensors", 4, ATTENTION, 1, torch.float32)),
        "face": str(write_random_lora(tiny_bundle, folder / "face.safetensors", 16, seed=2, dtype=torch.float32)),
    }


@pytest.fixture()
def engine_fp32(tiny_bundle, monkeypatch):
    """The tiny bundle's engine computing in float32 (test-only patches of the engine's dtype, undone after the
    test: the shared engine renders in bf16)."""
    monkeypatch.setattr(engine_module, "DTYPE", torch.float32)
    for name in ("build_component", "build_text_encoder", "build_embeddings_processor"):
        monkeypatch.setattr(engine_module, name, functools.partial(getattr(loading, name), dtype=torch.float32))
    monkeypatch.setattr(fp8_store, "build_component", functools.partial(loading.build_component, dtype=torch.float32))
    return Engine(tiny_bundle)


def _fused_transformer(bundle, loras: list[tuple[str, float]]) -> torch.nn.Module:
    """Upstream's own fusing: the transformer built with the LoRAs' ``s * B @ A`` added to its weights."""
    builder = SingleGPUModelBuilder(
        model_path=bundle.checkpoint_path,
        model_class_configurator=LTXModelConfigurator,
        model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,
    )
    for path, strength in loras:
        builder = builder.lora(path, strength, LTXV_LORA_COMFY_RENAMING_MAP)
    return builder.build(device=torch.device("cpu"), dtype=torch.float32)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@torch.inference_mode()
def test_user_loras_equal_fused_weights_and_strength_0_is_no_lora(engine_fp32, tiny_bundle, loras, media):
    request = _request(media["stereo_wav"])
    plain = engine_fp32.render(request, None, keep_latent=True).video_latent
    off = replace(request, loras=(LoraSpec(loras["style"], 0.0),))
    assert torch.equal(engine_fp32.render(off, None, keep_latent=True).video_latent, plain)

    stacked = [(loras["style"], 0.7), (loras["face"], -0.4)]
    ours = engine_fp32.render(replace(request, loras=tuple(LoraSpec(*s) for s in stacked)), None, keep_latent=True)
    fused = _fused_transformer(tiny_bundle, stacked)
    model = engine_fp32.transformer.velocity_model
    bases = {name: layer.base.weight for name, layer in engine_fp32.adapters.layers.items()}
    originals = {name: weight.clone() for name, weight in bases.items()}
    try:
        for name, weight in bases.items():  # the distilled LoRA stays a runtime branch in both renders
            weight.copy_(fused.get_submodule(name).weight)
        reference = engine_fp32.render(request, None, keep_latent=True).video_latent
    finally:
        for name, weight in bases.items():
            weight.copy_(originals[name])
    assert set(bases) == {n for n, m in fused.named_modules() if isinstance(m, torch.nn.Linear) and "blocks" in n}
    assert _relative(ours.video_latent, plain) > 0.05  # the LoRAs change the clip
    assert _relative(ours.video_latent, reference) < 1e-5  # exactly as fused, to fp32 rounding
    assert model.transformer_blocks[0].attn1.to_q.lo == model.transformer_blocks[0].attn1.to_q.hi


def test_a_lora_that_does_not_fit_fails_the_item_naming_file_and_layer(engine, media, tmp_path):
    lacking = tmp_path / "other-model.safetensors"
    save_safetensors(
        lacking,
        {
            "diffusion_model.transformer_blocks.7.attn1.to_q.lora_A.weight": torch.zeros(2, 64),
            "diffusion_model.transformer_blocks.7.attn1.to_q.lora_B.weight": torch.zeros(64, 2),
        },
        {},
    )
    misshapen = tmp_path / "misshapen.safetensors"
    save_safetensors(
        misshapen,
        {
            "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 65),
            "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(64, 2),
        },
        {},
    )
    not_safetensors = tmp_path / "pickle.safetensors"
    not_safetensors.write_bytes(b"\x80\x04\x95 pickle bytes, not safetensors")
    expected = {
        lacking: "targets layer transformer_blocks.7.attn1.to_q, which the model lacks",
        misshapen: "layer transformer_blocks.0.attn1.to_q is 64x65 in the LoRA but 64x64 in the model.",
        not_safetensors: "is not a readable safetensors file",
    }
    for path, message in expected.items():
        with pytest.raises(LoraError) as caught:
            engine.render(_request(media["stereo_wav"], loras=(LoraSpec(str(path)),)), None)
        assert caught.value.field == "loras"
        assert caught.value.message.startswith(f"{path}: ") and message in caught.value.message
    assert not engine.adapters.strengths


def test_loras_are_held_least_recently_used_first_and_reread_when_changed(tiny_bundle, tmp_path):
    model = loading.build_component(tiny_bundle, "transformer", torch.device("cpu"), dtype=torch.float32)
    adapters = Adapters(model, torch.bfloat16, max_loaded=2)
    paths = [str(write_random_lora(tiny_bundle, tmp_path / f"{n}.safetensors", 4, seed=n)) for n in range(3)]
    a, b, c = paths
    for path in paths:
        adapters.load(path)
    assert list(adapters.loaded) == [b, c] and adapters.reads == 3
    adapters.load(b)
    assert list(adapters.loaded) == [c, b] and adapters.reads == 3  # held: not read again
    adapters.load(a)
    assert list(adapters.loaded) == [b, a] and adapters.reads == 4  # read again; c, least recent, is gone
    write_random_lora(tiny_bundle, a, 6, seed=9)
    adapters.load(a)
    assert adapters.reads == 5 and adapters.loaded[a].rank == 6

    for dtype, held in ((torch.float32, torch.bfloat16), (torch.float16, torch.float16)):  # bf16 compute
        path = str(write_random_lora(tiny_bundle, tmp_path / f"{held}.safetensors", 4, dtype=dtype))
        down, up = next(iter(adapters.loaded[adapters.load(path)].layers.values()))
        assert down.dtype == up.dtype == held


def test_checkpoint_header_names_the_transformers_layers(tiny_bundle):
    model = loading.build_component(tiny_bundle, "transformer", torch.device("cpu"))
    shapes = transformer_shapes(tiny_bundle.checkpoint_path)
    assert shapes == {name: tuple(t.shape) for name, t in model.state_dict().items()}
    linears = {n: (m.out_features, m.in_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linear_shapes(shapes) == linears
    assert block_count(shapes) == len(model.transformer_blocks) == 2


def _adapted_transformer(bundle, loras: dict[str, str]):
    """The transformer as the engine holds it (bf16), with the distilled LoRA pinned and ``loras`` loaded."""
    model = loading.build_component(bundle, "transformer", torch.device("cpu"))
    adapters = Adapters(model, torch.bfloat16)
    adapters.pin(DISTILLED, bundle.distilled_lora)
    for path in loras.values():
        adapters.load(path)
    return X0Model(model).eval(), adapters


@torch.inference_mode()
def test_compiled_blocks_follow_the_adapter_set_and_the_graph_key_names_its_layout(tiny_bundle, loras, tmp_path):
    """One compiled graph per rank layout whatever the strengths; a new set of the same layout is copied into
    the same buffers (a captured CUDA graph replays it) and keeps the key; a larger set grows the buffers and
    changes the key."""
    from torch._dynamo.utils import counters

    twin = str(write_random_lora(tiny_bundle, tmp_path / "twin.safetensors", 4, ATTENTION, 3, torch.float32))
    eager, eager_adapters = _adapted_transformer(tiny_bundle, {**loras, "twin": twin})
    compiled, adapters = _adapted_transformer(tiny_bundle, {**loras, "twin": twin})
    torch._dynamo.reset()
    counters.clear()
    loop = BlockLoop(compiled.velocity_model, compile=True, backend="eager", state_key=lambda: adapters.key)
    video, audio = synthetic_inputs(compiled, VideoPixelShape(1, 9, 64, 64, 25.0), 1)
    style, face = loras["style"], loras["face"]
    sets = [
        {style: 0.5},
        {style: 0.9},
        {twin: 0.9},
        {style: 0.5, DISTILLED: 1.0},
        {style: 0.5, face: 1.0, DISTILLED: 1.0},
    ]
    keys, pointers, graphs = [], [], []
    layer = adapters.layers["transformer_blocks.0.attn1.to_q"]
    for strengths in sets:
        with eager_adapters.active(strengths):
            expected = eager(video=video, audio=audio, perturbations=None)[0]
        with adapters.active(strengths):
            got = compiled(video=video, audio=audio, perturbations=None)[0]
            keys.append(loop.state_key())
        assert torch.equal(got, expected)
        pointers.append(layer.down.data_ptr())
        graphs.append(counters["stats"]["unique_graphs"])
    assert keys[0] == keys[1] == keys[2] and graphs[0] == graphs[1] == graphs[2]  # strengths, set: no new graph
    assert keys[3] != keys[0]  # the distilled LoRA's ranks join in
    assert pointers[:4] == [pointers[0]] * 4 and pointers[4] != pointers[0]  # grown only for the larger set
    assert keys[4] not in keys[:4] and adapters.capacity == 32
    with adapters.active({DISTILLED: 0.5}):
        assert adapters.key not in keys and layer.hi - layer.lo == 4  # the distilled ranks alone (tiny: rank 4)
    with adapters.active({style: 0.0, DISTILLED: 0}):
        assert adapters.key is None and all(m.lo == m.hi for m in adapters.layers.values())
    assert all(m.lo == m.hi for m in adapters.layers.values()) and adapters.key is None


def test_an_item_with_more_loras_than_a_worker_holds_fails_with_the_option_to_raise(engine, media, loras):
    request = _request(media["stereo_wav"], loras=tuple(LoraSpec(p) for p in loras.values()))
    engine.adapters.max_loaded, limit = 1, engine.adapters.max_loaded
    try:
        with pytest.raises(RenderInputError, match="holds at most 1 at a time; raise --max-loras to 2"):
            engine.render(request, None)
    finally:
        engine.adapters.max_loaded = limit


def test_the_lora_benchmark_runs_on_the_tiny_bundle(engine, tiny_bundle, media, tmp_path):
    """``python -m tools.bench clip --part lora`` on a GPU; here its measurement on the CPU, tiny."""
    from tools.bench_lora import LORA_RANK, lora_cost

    lora = write_random_lora(tiny_bundle, tmp_path / "bench.safetensors", LORA_RANK)
    requests = [_request(media["stereo_wav"], seed=i, num_inference_steps=1) for i in range(2)]
    report = lora_cost(engine, requests, lora)
    assert report["staged_ranks"] == LORA_RANK and report["clips"] == 1
    assert report["with_s_median"]["stage_1"] > 0 and set(report["added_s"]) == {"stage_1", "stage_2", "total"}
