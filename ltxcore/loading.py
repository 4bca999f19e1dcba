"""Builds each model of a bundle through upstream's builders, and refuses half-loaded models.

Upstream's ``SingleGPUModelBuilder`` logs a warning and returns a model still on the ``meta`` device
when checkpoint keys are missing. A batch worker must fail loudly instead, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from ltx_core.loader import SDOps
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.audio_vae import (
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
    AudioDecoderConfigurator,
    AudioEncoderConfigurator,
    VocoderConfigurator,
)
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.video_vae import (
    VAE_DECODER_COMFY_KEYS_FILTER,
    VAE_ENCODER_COMFY_KEYS_FILTER,
    VideoDecoderConfigurator,
    VideoEncoderConfigurator,
)
from ltx_core.quantization import QuantizationPolicy
from ltx_core.text_encoders.gemma import (
    EMBEDDINGS_PROCESSOR_KEY_OPS,
    GEMMA_LLM_KEY_OPS,
    GEMMA_MODEL_OPS,
    module_ops_from_gemma_root,
)

from ltxcore.bundle import ModelBundle
from ltxcore.errors import BundleError
from ltxcore.text import EmbeddingsProcessorFromGemmaConfig, GemmaFromRoot


@dataclass(frozen=True)
class Component:
    """One model inside the bundle: which file holds it, how it is built, how its keys are mapped."""

    source: str  # the ModelBundle field naming its file (checkpoint_path: the bundle's model_checkpoint)
    configurator: Any  # an upstream ModelConfigurator class: the builder calls its ``from_config``
    sd_ops: SDOps | None


COMPONENTS = {
    "transformer": Component("checkpoint_path", LTXModelConfigurator, LTXV_MODEL_COMFY_RENAMING_MAP),
    "video_encoder": Component("checkpoint_path", VideoEncoderConfigurator, VAE_ENCODER_COMFY_KEYS_FILTER),
    "video_decoder": Component("checkpoint_path", VideoDecoderConfigurator, VAE_DECODER_COMFY_KEYS_FILTER),
    "audio_encoder": Component("checkpoint_path", AudioEncoderConfigurator, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER),
    "audio_decoder": Component("checkpoint_path", AudioDecoderConfigurator, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER),
    "vocoder": Component("checkpoint_path", VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER),
    "spatial_upsampler": Component("spatial_upsampler_path", LatentUpsamplerConfigurator, None),
}


def refuse_meta(model: torch.nn.Module, what: str, path: str) -> None:
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BundleError(
            f"{path} is missing weights for the {what}: {shown}. The file does not fit its config; "
            "check that it is the released LTX-2.3 file and that it downloaded completely."
        )


def _build(builder: SingleGPUModelBuilder, what: str, path: str, device: torch.device, dtype: torch.dtype | None):
    try:
        model = builder.build(device=device, dtype=dtype)
    except (RuntimeError, KeyError, ValueError) as e:
        raise BundleError(f"{path} could not be loaded as the {what}: {e}") from e
    refuse_meta(model, what, path)
    return model.eval().requires_grad_(False)


def _builder(bundle: ModelBundle, name: str) -> SingleGPUModelBuilder:
    spec = COMPONENTS[name]
    path = bundle.model_checkpoint if spec.source == "checkpoint_path" else getattr(bundle, spec.source)
    return SingleGPUModelBuilder(model_path=path, model_class_configurator=spec.configurator, model_sd_ops=spec.sd_ops)


def component_skeleton(bundle: ModelBundle, name: str) -> torch.nn.Module:
    """One named component of ``COMPONENTS`` on the meta device, built from its checkpoint's config with no
    weight read: what a stored state (``ltxcore.fp8_store``) is assigned into."""
    builder = _builder(bundle, name)
    return builder.meta_model(builder.model_config(), builder.module_ops)


def build_component(
    bundle: ModelBundle,
    name: str,
    device: torch.device,
    dtype: torch.dtype = torch.bfloat16,
    quantization: QuantizationPolicy | None = None,
) -> torch.nn.Module:
    """Build one named component of ``COMPONENTS`` on ``device``."""
    builder = _builder(bundle, name)
    path = str(builder.model_path)
    if quantization is not None:
        sd_ops = builder.model_sd_ops
        if quantization.sd_ops is not None and sd_ops is not None:
            sd_ops = SDOps(
                name=f"{sd_ops.name}+{quantization.sd_ops.name}",
                mapping=(*sd_ops.mapping, *quantization.sd_ops.mapping),
            )
        builder = replace(builder, model_sd_ops=sd_ops, module_ops=(*builder.module_ops, *quantization.module_ops))
        return _build(builder, name.replace("_", " "), path, device, None)  # keep the policy's storage dtypes
    return _build(builder, name.replace("_", " "), path, device, dtype)


def build_text_encoder(bundle: ModelBundle, device: torch.device, dtype: torch.dtype = torch.bfloat16):
    gemma_config = bundle.gemma_config()
    builder = SingleGPUModelBuilder(
        model_path=bundle.gemma_shards(),
        model_class_configurator=GemmaFromRoot(gemma_config),  # pyright: ignore[reportArgumentType]  # duck-typed
        model_sd_ops=GEMMA_LLM_KEY_OPS,
        module_ops=(GEMMA_MODEL_OPS, *module_ops_from_gemma_root(bundle.gemma_root)),
    )
    return _build(builder, "Gemma text encoder", bundle.gemma_root, device, dtype)


def build_embeddings_processor(bundle: ModelBundle, device: torch.device, dtype: torch.dtype = torch.bfloat16):
    text_config = bundle.gemma_config().get("text_config", {})
    builder = SingleGPUModelBuilder(
        model_path=bundle.model_checkpoint,
        model_class_configurator=EmbeddingsProcessorFromGemmaConfig(text_config),  # pyright: ignore[reportArgumentType]
        model_sd_ops=EMBEDDINGS_PROCESSOR_KEY_OPS,
    )
    return _build(builder, "text embeddings processor", bundle.model_checkpoint, device, dtype)
