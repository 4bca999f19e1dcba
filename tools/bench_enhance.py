"""GPU benchmark of prompt enhancement at the released Gemma-3 12B sizes (random weights): Gemma held on the
GPU for a shard's prompts (what the engine does) against Gemma streamed layer by layer for every token.

    python -m tools.bench enhance --out enhance.json

Gemma-3 is built at ``fixtures/bundle_configs/reference.json``'s sizes with all 48 layers of the 12B (the reference
bundle writes 6) and random bf16 weights on the GPU, then
kept in pinned host memory as the engine keeps it (:class:`~ltxcore.offload.StreamedModule`). Its tokenizer,
chat template and image processor are a tiny bundle's (a 2,048-word vocabulary; timing does not depend on the
words, and the system prompt comes out a little longer than with Gemma's own). Each prompt is enhanced with the
engine's :class:`~ltxcore.enhance.PromptEnhancer` (upstream's ``enhance_t2v`` / ``enhance_i2v``); random weights
never stop, so every answer runs to upstream's 512 new tokens, a real one's upper bound. Reported:

- ``resident``: seconds to place Gemma on the GPU, then per prompt (text only and with an image) its seconds and
  Gemma forwards (one per new token; the first also reads the prompt), and the peak GPU memory;
- ``streamed``: seconds per Gemma forward of one token when each forward streams every weight to the GPU
  (upstream's ``generate`` cannot run streamed: it places its inputs on the model's host device).

``--size tiny --device cpu`` runs the same code on the tiny sizes (a check, not a measurement).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image

from fixtures.random_bundle import load_configs, make_tiny_bundle, random_model
from ltxcore.enhance import MAX_NEW_TOKENS, PromptEnhancer
from ltxcore.offload import StreamedModule
from ltxcore.text import gemma_model_from_config
from tools.reference_clip import REFERENCE

GEMMA_3_12B_LAYERS = 48
PROMPT = "A friendly teacher explains fractions to the camera in a bright classroom"


def _gemma(size: str, device: torch.device, root: str):
    """Gemma-3 at ``size`` with random weights, wrapped as upstream's text encoder with ``root``'s tokenizer."""
    from ltx_core.text_encoders.gemma import GEMMA_MODEL_OPS, GemmaTextEncoder, module_ops_from_gemma_root

    configs = load_configs(size)
    config = json.loads(next(Path(root).rglob("config.json")).read_text())
    config["text_config"].update(configs["gemma_text"])
    if size == "reference":  # the reference bundle keeps 6 of Gemma's layers on disk; here all 48 are built
        config["text_config"]["num_hidden_layers"] = GEMMA_3_12B_LAYERS
    config["vision_config"].update(configs["gemma_vision"])
    generator = torch.Generator(device=device).manual_seed(0)
    model = random_model(lambda: gemma_model_from_config(config, device=None), generator).bfloat16()
    encoder = GEMMA_MODEL_OPS.mutator(GemmaTextEncoder(model=model))  # rotary and scale buffers, as loading sets
    for op in module_ops_from_gemma_root(root):
        encoder = op.mutator(encoder)  # tokenizer, then processor
    return encoder.to(device).eval()


def _forwards(encoder) -> list[int]:
    """A counter of Gemma's forwards (one per new token; the first also reads the prompt)."""
    count = [0]
    encoder.model.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


@torch.inference_mode()
def run(size: str, device_name: str, prompts: int, streamed_tokens: int) -> dict:
    device = torch.device(device_name)
    folder = Path(tempfile.mkdtemp(prefix="ltx-batch-bench-enhance-"))
    root = make_tiny_bundle(folder / "tiny").gemma_root
    image = folder / "presenter.png"
    pixels = np.random.default_rng(0).integers(0, 255, (REFERENCE.height, REFERENCE.width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    start = _sync(device)
    encoder = _gemma(size, device, root)
    stream = StreamedModule(torch.nn.ModuleList([encoder]), device)  # weights to pinned host memory
    built = _sync(device) - start
    count = _forwards(encoder)
    parameters = sum(p.numel() for p in encoder.parameters())
    enhancer = PromptEnhancer(encoder, MAX_NEW_TOKENS)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    per_prompt = []
    start = _sync(device)
    with stream.resident():
        placed = _sync(device) - start
        for i in range(prompts):
            with_image = str(image) if i % 2 else None
            count[0], start = 0, _sync(device)
            enhancer.generate((PROMPT, with_image, i))
            seconds = _sync(device) - start
            per_prompt.append({"image": bool(with_image), "seconds": seconds, "forwards": count[0]})
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    with stream.on():  # upstream's generate puts its inputs on the model's (host) device: forwards, called directly
        token, gemma = torch.ones((1, 1), dtype=torch.long, device=device), cast(torch.nn.Module, encoder.model)
        count[0], start = 0, _sync(device)
        for _ in range(streamed_tokens):
            gemma(input_ids=token)
        streamed = _sync(device) - start
    decode = [p["seconds"] / p["forwards"] for p in per_prompt]
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "size": size,
        "gemma_parameters": parameters,
        "build_and_pin_seconds": built,
        "resident": {"place_seconds": placed, "prompts": per_prompt, "peak_gpu_bytes": peak},
        "resident_seconds_per_forward": sorted(decode)[len(decode) // 2],
        "streamed": {"seconds": streamed, "forwards": count[0], "seconds_per_forward": streamed / count[0]},
        "max_new_tokens": MAX_NEW_TOKENS,
    }
