"""Prompt encoding: Gemma-3 built from its root's own config, plus a cache of encoded prompt pairs.

Upstream's Gemma configurator and feature extractor read a hard-coded 12B Gemma config. Ours read the
Gemma root's ``config.json``, which is right for the released root and for tiny test roots alike.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass

import torch
from ltx_core.text_encoders.gemma import EmbeddingsProcessor, GemmaTextEncoder
from ltx_core.text_encoders.gemma.embeddings_connector import (
    AudioEmbeddings1DConnectorConfigurator,
    Embeddings1DConnectorConfigurator,
)
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2
from transformers import Gemma3Config, Gemma3ForConditionalGeneration

from ltxcore.errors import BundleError

# The LTX-2.3 text path: projection before the connector, per-token RMS norm, dual aggregate embeds.
LTX23_TEXT_PATH = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}


def gemma_model_from_config(config: dict, device: str | torch.device | None = "meta") -> Gemma3ForConditionalGeneration:
    """Gemma-3 sized by ``config``, built on ``device`` (``None``: wherever the caller's context builds)."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))


def processor_from_config(vision: dict) -> dict:
    """The ``preprocessor_config.json`` a Gemma-3 root carries, sized to its vision tower."""
    return {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": "Gemma3Processor",
        "size": {"height": vision["image_size"], "width": vision["image_size"]},
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
        "resample": 2,
    }


@dataclass(frozen=True)
class GemmaFromRoot:
    """Configurator (upstream's ``from_config`` protocol) that sizes Gemma from the root's config.json."""

    gemma_config: dict

    def from_config(self, config: dict) -> GemmaTextEncoder:  # noqa: ARG002 - the checkpoint config is not Gemma's
        return GemmaTextEncoder(model=gemma_model_from_config(self.gemma_config))


@dataclass(frozen=True)
class EmbeddingsProcessorFromGemmaConfig:
    """Configurator for the LTX-2.3 feature extractor + connectors, sized by the Gemma text config."""

    gemma_text_config: dict

    def from_config(self, config: dict) -> EmbeddingsProcessor:
        transformer = config.get("transformer", {})
        drift = {k: transformer.get(k) for k, v in LTX23_TEXT_PATH.items() if transformer.get(k) != v}
        if drift:
            raise BundleError(
                f"checkpoint config does not describe the LTX-2.3 text path (found {drift}); "
                "this engine supports LTX-2.3 checkpoints."
            )
        hidden = self.gemma_text_config["hidden_size"]
        flat = hidden * (self.gemma_text_config["num_hidden_layers"] + 1)
        video_dim = transformer["num_attention_heads"] * transformer["attention_head_dim"]
        audio_dim = transformer["audio_num_attention_heads"] * transformer["audio_attention_head_dim"]
        return EmbeddingsProcessor(
            feature_extractor=FeatureExtractorV2(
                video_aggregate_embed=torch.nn.Linear(flat, video_dim, bias=True),
                embedding_dim=hidden,
                audio_aggregate_embed=torch.nn.Linear(flat, audio_dim, bias=True),
            ),
            video_connector=Embeddings1DConnectorConfigurator.from_config(config),  # pyright: ignore[reportAttributeAccessIssue]  # upstream's cls annotation
            audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(config),  # pyright: ignore[reportAttributeAccessIssue]  # upstream's cls annotation
        )


@dataclass(frozen=True)
class PromptEncoding:
    """Video and audio context for one prompt, on the engine's device."""

    video: torch.Tensor
    audio: torch.Tensor


PromptKey = tuple[str, str | None]  # (prompt, negative prompt); None where no guider needs one
PromptPair = tuple[PromptEncoding, PromptEncoding | None]


class PromptCache:
    """Encoded (prompt, negative prompt) pairs, least recently used evicted first.

    A batch often shares one template prompt across thousands of items, so Gemma runs once per pair.
    """

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._entries: OrderedDict[PromptKey, PromptPair] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: PromptKey) -> PromptPair | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key: PromptKey, value: PromptPair) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __contains__(self, key: PromptKey) -> bool:
        return key in self._entries


TEXT_BATCH = 2  # prompts per Gemma forward: one weight stream serves two (12B: ~0.8 GB of hidden states)


@torch.inference_mode()
def encode_prompts(
    prompts: list[str], text_encoder: GemmaTextEncoder, processor: EmbeddingsProcessor, device: torch.device
) -> list[PromptEncoding]:
    """Gemma hidden states -> LTX-2.3 feature extractor and connectors, ``TEXT_BATCH`` prompts per forward.

    Every prompt is padded to the tokenizer's fixed length, so prompts stack without extra padding.
    """
    assert text_encoder.tokenizer is not None and text_encoder.model is not None, "a built Gemma text encoder"
    out = []
    for start in range(0, len(prompts), TEXT_BATCH):
        tokens = [text_encoder.tokenizer.tokenize_with_weights(p)["gemma"] for p in prompts[start : start + TEXT_BATCH]]
        ids = torch.tensor([[t[0] for t in row] for row in tokens], device=device)
        mask = torch.tensor([[t[1] for t in row] for row in tokens], device=device)
        out_states = text_encoder.model.model(
            input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
        )
        hidden = out_states.hidden_states
        for i in range(len(tokens)):
            result = processor.process_hidden_states(tuple(h[i : i + 1] for h in hidden), mask[i : i + 1])
            assert result.audio_encoding is not None, "LTX-2.3's processor has an audio connector"
            out.append(PromptEncoding(video=result.video_encoding, audio=result.audio_encoding))
    return out
