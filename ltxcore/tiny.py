"""Tiny random LTX-2.3 bundles in the released on-disk format, for tests and the demo.

Every component is built by upstream's own configurators from the tiny configs in
``tiny_configs.json``, given seeded random weights, and saved under the key prefixes the
released checkpoint uses. Loading such a bundle therefore exercises the real load path.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ltxcore.bundle import RELEASED_NAMES, ModelBundle
from ltxcore.text import gemma_model_from_config, processor_from_config

TINY_CONFIGS = json.loads((Path(__file__).with_name("tiny_configs.json")).read_text())
TINY_MODEL_VERSION = "2.3.0"

# Where each component's state dict lives in the released single-file checkpoint.
CHECKPOINT_PREFIXES = {
    "transformer": "model.diffusion_model.",
    "video_encoder": "vae.encoder.",
    "video_decoder": "vae.decoder.",
    "audio_encoder": "audio_vae.encoder.",
    "audio_decoder": "audio_vae.decoder.",
    "vocoder": "vocoder.",
}
# Sub-keys that the released format stores once per VAE, beside encoder and decoder.
SHARED_SUBKEY = "per_channel_statistics."
EMBEDDINGS_PROCESSOR_PREFIXES = {
    "feature_extractor.": "text_embedding_projection.",
    "video_connector.": "model.diffusion_model.video_embeddings_connector.",
    "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
}
# Hugging Face Gemma-3 module names -> names in the released Gemma safetensors.
GEMMA_PREFIXES = {
    "model.language_model.": "language_model.model.",
    "model.vision_tower.": "vision_tower.",
    "model.multi_modal_projector.": "multi_modal_projector.",
}
GEMMA_SPECIAL_TOKENS = {
    "image_token": "<image_soft_token>",
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
}
TOKENIZER_CORPUS = (
    "A presenter speaks to the camera in a bright studio, natural light, calm gestures.",
    "Ein Moderator spricht in einem hellen Studio. Une présentatrice parle devant la caméra.",
    "Close-up of a friendly face, soft focus background, the lesson begins now.",
    "Hello and welcome to lesson three about fractions, decimals and percentages.",
    "Hola, bienvenidos. Ciao a tutti. Olá a todos. こんにちは。 你好。 Привет всем.",
)


def _randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Seeded weights at a scale that keeps activations finite through every tiny component."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        with torch.no_grad():
            if "std-of-means" in name:
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.ndim <= 1:
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value.detach().to(torch.bfloat16).contiguous() for key, value in state.items()}


def _checkpoint_tensors(generator: torch.Generator, gemma_text: dict) -> dict[str, torch.Tensor]:
    from ltxcore.loading import COMPONENTS, EmbeddingsProcessorFromGemmaConfig

    config = TINY_CONFIGS["checkpoint_metadata_config"]
    tensors: dict[str, torch.Tensor] = {}
    for name, prefix in CHECKPOINT_PREFIXES.items():
        model = COMPONENTS[name].configurator.from_config(config)
        _randomize(model, generator)
        for key, value in _prefixed(model.state_dict(), prefix).items():
            if SHARED_SUBKEY in key:
                key = key.replace(prefix, prefix.split(".")[0] + ".")
            tensors.setdefault(key, value)
    processor = EmbeddingsProcessorFromGemmaConfig(gemma_text).from_config(config)
    _randomize(processor, generator)
    for key, value in processor.state_dict().items():
        head = next(p for p in EMBEDDINGS_PROCESSOR_PREFIXES if key.startswith(p))
        tensors[EMBEDDINGS_PROCESSOR_PREFIXES[head] + key[len(head) :]] = value.to(torch.bfloat16).contiguous()
    return tensors


def _lora_tensors(
    linears: list[tuple[str, tuple[int, int]]], rank: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """lora_A/lora_B for every Linear weight inside the transformer blocks, in the released naming."""
    tensors = {}
    for key, shape in linears:
        stem = key[: -len(".weight")]
        out_features, in_features = shape
        tensors[f"{stem}.lora_A.weight"] = (torch.randn(rank, in_features, generator=generator) / in_features**0.5).to(
            torch.bfloat16
        )
        tensors[f"{stem}.lora_B.weight"] = (0.5 * torch.randn(out_features, rank, generator=generator) / rank**0.5).to(
            torch.bfloat16
        )
    return tensors


def _train_tokenizer(path: Path) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_CORPUS * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=512,
        byte_fallback=True,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        user_defined_symbols=list(GEMMA_SPECIAL_TOKENS.values()) + ["<start_of_turn>", "<end_of_turn>"],
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())


def _write_gemma_root(root: Path, generator: torch.Generator) -> dict:
    """A Gemma-3 root like the released one: config, tokenizer, preprocessor, sharded-style safetensors."""
    import sentencepiece as spm

    root.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(root / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(root / "tokenizer.model"))
    text = dict(TINY_CONFIGS["gemma_text"], vocab_size=sp.get_piece_size(), model_type="gemma3_text")
    vision = dict(TINY_CONFIGS["gemma_vision"], model_type="siglip_vision_model")
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["boi_token"]),
        "eoi_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["eoi_token"]),
        "image_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["image_token"]),
        "mm_tokens_per_image": TINY_CONFIGS["mm_tokens_per_image"],
        "eos_token_id": [1],
        "text_config": text,
        "vision_config": vision,
        "torch_dtype": "bfloat16",
    }
    (root / "config.json").write_text(json.dumps(config, indent=1))
    (root / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "GemmaTokenizer",
                "add_bos_token": True,
                "add_eos_token": False,
                "pad_token": "<pad>",
                "eos_token": "<eos>",
                "bos_token": "<bos>",
                "unk_token": "<unk>",
                "extra_special_tokens": GEMMA_SPECIAL_TOKENS,
                **GEMMA_SPECIAL_TOKENS,
            },
            indent=1,
        )
    )
    (root / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<pad>", "eos_token": "<eos>"}))
    processor = processor_from_config(vision)
    (root / "preprocessor_config.json").write_text(json.dumps(processor, indent=1))

    model = gemma_model_from_config(config, device="cpu")
    _randomize(model, generator)
    tensors = {}
    for key, value in model.state_dict().items():
        head = next((p for p in GEMMA_PREFIXES if key.startswith(p)), None)
        if head is not None:
            tensors[GEMMA_PREFIXES[head] + key[len(head) :]] = value.to(torch.bfloat16).contiguous()
    save_file(tensors, str(root / "model-00001-of-00001.safetensors"), metadata={"format": "pt"})
    return text


def make_tiny_bundle(folder: str | Path, seed: int = 0) -> ModelBundle:
    """Write a complete tiny bundle under ``folder`` with the released file names; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    gemma_text = _write_gemma_root(folder / RELEASED_NAMES["gemma_root"], generator)

    tensors = _checkpoint_tensors(generator, gemma_text)
    metadata = {
        "config": json.dumps(TINY_CONFIGS["checkpoint_metadata_config"]),
        "model_version": TINY_MODEL_VERSION,
    }
    save_file(tensors, str(folder / RELEASED_NAMES["checkpoint_path"]), metadata=metadata)

    block_linears = [
        (key.removeprefix("model."), tuple(value.shape))
        for key, value in tensors.items()
        if key.startswith("model.diffusion_model.transformer_blocks.") and key.endswith(".weight") and value.ndim == 2
    ]
    lora = _lora_tensors(block_linears, TINY_CONFIGS["lora_rank"], generator)
    save_file(lora, str(folder / RELEASED_NAMES["distilled_lora"]), metadata={"format": "pt"})

    from ltxcore.loading import COMPONENTS

    upsampler = COMPONENTS["spatial_upsampler"].configurator.from_config(TINY_CONFIGS["upsampler_metadata_config"])
    _randomize(upsampler, generator)
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in upsampler.state_dict().items()},
        str(folder / RELEASED_NAMES["spatial_upsampler_path"]),
        metadata={"config": json.dumps(TINY_CONFIGS["upsampler_metadata_config"])},
    )
    return ModelBundle.from_folder(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a tiny random LTX-2.3 bundle (released file layout).")
    parser.add_argument("folder", help="output folder, e.g. ~/.cache/ltx-batch/tiny-bundle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bundle = make_tiny_bundle(args.folder, seed=args.seed)
    print(bundle.describe())


if __name__ == "__main__":
    main()
