"""Random LTX-2.3 bundles in the released on-disk format: tiny ones for tests and the demo, and
reference-size ones (the released 22B configs) for the GPU benchmark.

Every component is built by upstream's own configurators from ``bundle_configs/<size>.json``, given
seeded random weights, and saved under the key prefixes the released checkpoint uses. Loading such a
bundle therefore exercises the real load path. Reference-size bundles are built and randomised on the
GPU in bf16 and streamed to disk tensor by tensor (the checkpoint alone is ~40 GB).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import torch

from ltxcore.bundle import OPTIONAL_NAMES, RELEASED_NAMES, ModelBundle
from ltxcore.text import gemma_model_from_config, processor_from_config

SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64",
                      torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}  # fmt: skip
CONFIGS_DIR = Path(__file__).with_name("bundle_configs")
MODEL_VERSION = "2.3.0"


def load_configs(size: str) -> dict:
    """Component configs for ``size``: ``tiny`` (tests, demo) or ``reference`` (LTX-2.3 22B as released)."""
    return json.loads((CONFIGS_DIR / f"{size}.json").read_text())


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
# Gemma-3's chat turns, as prompt enhancement sends them (a system text opens the first user turn; an image part
# is the start-of-image token, which the processor expands to the image's tokens). Gemma's vision tower must
# give the processor's fixed 256 tokens per image (bundle_configs: mm_tokens_per_image).
GEMMA_CHAT_TEMPLATE = r"""{{ bos_token }}
{%- set system = namespace(text='') -%}
{%- if messages[0]['role'] == 'system' -%}
{%- set system.text = messages[0]['content'] ~ '\n\n' -%}
{%- set messages = messages[1:] -%}
{%- endif -%}
{%- for message in messages -%}
{{ '<start_of_turn>' ~ ('model' if message['role'] == 'assistant' else message['role']) ~ '\n' }}
{%- if loop.first %}{{ system.text }}{% endif -%}
{%- if message['content'] is string -%}
{{ message['content'] | trim }}
{%- else -%}
{%- for part in message['content'] -%}
{{ '<start_of_image>' if part['type'] == 'image' else part['text'] | trim }}
{%- endfor -%}
{%- endif -%}
{{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif -%}"""
TOKENIZER_CORPUS = (
    "A presenter speaks to the camera in a bright studio, natural light, calm gestures.",
    "Ein Moderator spricht in einem hellen Studio. Une présentatrice parle devant la caméra.",
    "Close-up of a friendly face, soft focus background, the lesson begins now.",
    "Hello and welcome to lesson three about fractions, decimals and percentages.",
    "Hola, bienvenidos. Ciao a tutti. Olá a todos. こんにちは。 你好。 Привет всем.",
)


def _randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Seeded weights at a scale that keeps activations finite through every component."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        like = {"generator": generator, "device": generator.device, "dtype": tensor.dtype}
        with torch.no_grad():
            if "std-of-means" in name:
                tensor.copy_(0.5 + torch.rand(tensor.shape, **like))
            elif tensor.ndim <= 1:
                tensor.copy_(0.02 * torch.randn(tensor.shape, **like))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, **like) / fan_in**0.5)


Model = TypeVar("Model", bound=torch.nn.Module)


def random_model(make: Callable[[], Model], generator: torch.Generator) -> Model:
    """``make()`` with seeded random weights on the generator's device: float32 on the CPU (tiny sizes),
    built on ``meta`` and materialised in bf16 on a GPU (full sizes would not fit in host float32)."""
    device = generator.device
    if device.type == "cpu":
        model = make()
    else:
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("meta"):
                model = make()
        finally:
            torch.set_default_dtype(torch.float32)
        model = model.to_empty(device=device)
    _randomize(model, generator)
    return model.requires_grad_(False)


def _bf16(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + key: value.detach().to(torch.bfloat16).contiguous() for key, value in state.items()}


def _checkpoint_tensors(configs: dict, generator: torch.Generator, gemma_text: dict) -> dict[str, torch.Tensor]:
    from ltxcore.loading import COMPONENTS, EmbeddingsProcessorFromGemmaConfig

    config = configs["checkpoint_metadata_config"]
    tensors: dict[str, torch.Tensor] = {}
    for name, prefix in CHECKPOINT_PREFIXES.items():
        model = random_model(lambda name=name: COMPONENTS[name].configurator.from_config(config), generator)
        for key, value in _bf16(model.state_dict(), prefix).items():
            if SHARED_SUBKEY in key:
                key = key.replace(prefix, prefix.split(".")[0] + ".")
            tensors.setdefault(key, value)
        del model
    processor = random_model(lambda: EmbeddingsProcessorFromGemmaConfig(gemma_text).from_config(config), generator)
    for key, value in _bf16(processor.state_dict()).items():
        head = next(p for p in EMBEDDINGS_PROCESSOR_PREFIXES if key.startswith(p))
        tensors[EMBEDDINGS_PROCESSOR_PREFIXES[head] + key[len(head) :]] = value
    return tensors


def random_lora(
    linears: list[tuple[str, tuple[int, ...]]],
    rank: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, torch.Tensor]:
    """Random lora_A/lora_B for each ``(weight key, (out, in))``, named as the released LoRA names them."""
    tensors = {}
    like = {"generator": generator, "device": generator.device}
    for key, shape in linears:
        stem = key[: -len(".weight")]
        out_features, in_features = shape
        down = torch.randn(rank, in_features, **like) / in_features**0.5
        tensors[f"{stem}.lora_A.weight"] = down.to(dtype)
        up = 0.5 * torch.randn(out_features, rank, **like) / rank**0.5
        tensors[f"{stem}.lora_B.weight"] = up.to(dtype)
    return tensors


def write_random_lora(
    bundle: ModelBundle,
    path: str | Path,
    rank: int,
    targets: tuple[str, ...] = ("transformer_blocks.",),
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    device: str = "cpu",
) -> Path:
    """A random user LoRA for ``bundle``'s transformer, as a released one is written: rank ``rank`` on every
    Linear whose name contains one of ``targets`` (default: every block linear), shapes read from the
    checkpoint's header. Reference-size bundles: rank 32 on every block linear is ~0.7 GB in bf16."""
    from ltxcore.checkpoint_header import linear_shapes, transformer_shapes

    linears = linear_shapes(transformer_shapes(bundle.checkpoint_path))
    names = [name for name in linears if any(t in name for t in targets)]
    chosen = [(f"diffusion_model.{name}.weight", linears[name]) for name in names]
    if not chosen:
        raise ValueError(f"no Linear of the transformer matches {targets}.")
    generator = torch.Generator(device=device).manual_seed(seed)
    save_safetensors(Path(path), random_lora(chosen, rank, generator, dtype), {"format": "pt"})
    return Path(path)


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write the safetensors format tensor by tensor, from any device, without a host copy of the whole
    file (a 40 GB checkpoint would need twice that in host memory through ``safetensors.save_file``)."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for key, value in tensors.items():
        size = value.numel() * value.element_size()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[value.dtype],
            "shape": list(value.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for value in tensors.values():
            f.write(value.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())


def _tokenizer_corpus() -> list[str]:
    """Our sentences and upstream's enhancement system prompts, so that those tokenize to words, not bytes."""
    prompts = resources.files("ltx_core.text_encoders.gemma.encoders") / "prompts"
    lines = [line for p in prompts.iterdir() if p.name.endswith(".txt") for line in p.read_text().splitlines()]
    return [*TOKENIZER_CORPUS, *(line for line in lines if line.strip())]


def _train_tokenizer(path: Path) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_tokenizer_corpus() * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=2048,
        hard_vocab_limit=False,
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


def _write_gemma_root(root: Path, configs: dict, generator: torch.Generator) -> dict:
    """A Gemma-3 root like the released one: config, tokenizer with its chat template (prompt enhancement needs
    it), preprocessor, sharded-style safetensors."""
    import sentencepiece as spm

    root.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(root / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(root / "tokenizer.model"))
    text = {"vocab_size": sp.get_piece_size(), **configs["gemma_text"], "model_type": "gemma3_text"}
    vision = dict(configs["gemma_vision"], model_type="siglip_vision_model")
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["boi_token"]),
        "eoi_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["eoi_token"]),
        "image_token_index": sp.piece_to_id(GEMMA_SPECIAL_TOKENS["image_token"]),
        "mm_tokens_per_image": configs["mm_tokens_per_image"],
        "eos_token_id": [sp.eos_id(), sp.piece_to_id("<end_of_turn>")],
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
                "chat_template": GEMMA_CHAT_TEMPLATE,
            },
            indent=1,
        )
    )
    (root / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<pad>", "eos_token": "<eos>"}))
    if "gemma_max_new_tokens" in configs:  # random weights never choose to stop: cap enhancement's answer
        generation = {"eos_token_id": config["eos_token_id"], "max_new_tokens": configs["gemma_max_new_tokens"]}
        (root / "generation_config.json").write_text(json.dumps(generation, indent=1))
    processor = processor_from_config(vision)
    (root / "preprocessor_config.json").write_text(json.dumps(processor, indent=1))

    model = random_model(lambda: gemma_model_from_config(config, device=None), generator)
    tensors = {}
    for key, value in _bf16(model.state_dict()).items():
        head = next((p for p in GEMMA_PREFIXES if key.startswith(p)), None)
        if head is not None:
            tensors[GEMMA_PREFIXES[head] + key[len(head) :]] = value
    save_safetensors(root / "model-00001-of-00001.safetensors", tensors, {"format": "pt"})
    return text


def add_distilled_checkpoint(folder: str | Path, device: str = "cpu") -> Path:
    """Write ``ltx-2.3-22b-distilled.safetensors`` beside a bundle's dev checkpoint: the dev checkpoint with
    the bundle's distilled LoRA fused in at strength 1 (what that LoRA approximates), same format and config."""
    from safetensors import safe_open

    folder = Path(folder)
    with safe_open(str(folder / RELEASED_NAMES["distilled_lora"]), "pt", device=device) as f:
        lora = {key: f.get_tensor(key) for key in f.keys()}
    with safe_open(str(folder / RELEASED_NAMES["checkpoint_path"]), "pt", device=device) as f:
        metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    for down_key in [key for key in lora if ".lora_A." in key]:
        stem = down_key.split(".lora_A.")[0]  # the LoRA names weights without the checkpoint's "model." prefix
        weight = tensors[f"model.{stem}.weight"]
        delta = lora[f"{stem}.lora_B.weight"].float() @ lora[down_key].float()
        tensors[f"model.{stem}.weight"] = (weight.float() + delta).to(weight.dtype)
    path = folder / OPTIONAL_NAMES["distilled_checkpoint_path"]
    save_safetensors(path, tensors, metadata)
    return path


def make_bundle(
    folder: str | Path, size: str = "tiny", seed: int = 0, device: str = "cpu", distilled_checkpoint: bool = False
) -> ModelBundle:
    """Write a complete random bundle of ``size`` under ``folder`` with the released file names (and, with
    ``distilled_checkpoint``, the optional distilled checkpoint); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    configs = load_configs(size)
    generator = torch.Generator(device=device).manual_seed(seed)
    gemma_text = _write_gemma_root(folder / RELEASED_NAMES["gemma_root"], configs, generator)

    tensors = _checkpoint_tensors(configs, generator, gemma_text)
    metadata = {"config": json.dumps(configs["checkpoint_metadata_config"]), "model_version": MODEL_VERSION}
    save_safetensors(folder / RELEASED_NAMES["checkpoint_path"], tensors, metadata)
    block_linears = [
        (key.removeprefix("model."), tuple(value.shape))
        for key, value in tensors.items()
        if key.startswith("model.diffusion_model.transformer_blocks.") and key.endswith(".weight") and value.ndim == 2
    ]
    del tensors
    lora = random_lora(block_linears, configs["lora_rank"], generator)
    save_safetensors(folder / RELEASED_NAMES["distilled_lora"], lora, {"format": "pt"})
    del lora

    from ltxcore.loading import COMPONENTS

    upsampler_config = configs["upsampler_metadata_config"]
    upsampler = random_model(
        lambda: COMPONENTS["spatial_upsampler"].configurator.from_config(upsampler_config), generator
    )
    save_safetensors(
        folder / RELEASED_NAMES["spatial_upsampler_path"],
        _bf16(upsampler.state_dict()),
        {"config": json.dumps(upsampler_config)},
    )
    if distilled_checkpoint:
        add_distilled_checkpoint(folder, device)
    return ModelBundle.from_folder(folder)


def make_tiny_bundle(folder: str | Path, seed: int = 0, distilled_checkpoint: bool = False) -> ModelBundle:
    """The tiny bundle of tests and the demo (~21 MB, a few seconds on a CPU)."""
    return make_bundle(folder, "tiny", seed, distilled_checkpoint=distilled_checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a random LTX-2.3 bundle in the released file layout.")
    parser.add_argument("folder", help="output folder, e.g. ~/.cache/ltx-batch/tiny-bundle")
    parser.add_argument(
        "--size",
        choices=("tiny", "reference"),
        default="tiny",
        help="reference: the released 22B sizes (~58 GB on disk; needs a GPU with 48 GB or more)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="where to build and randomise (default: cuda for reference)")
    parser.add_argument(
        "--distilled-checkpoint", action="store_true", help=f"also write {OPTIONAL_NAMES['distilled_checkpoint_path']}"
    )
    args = parser.parse_args()
    device = args.device or ("cuda" if args.size == "reference" else "cpu")
    print(make_bundle(args.folder, args.size, args.seed, device, args.distilled_checkpoint).describe())


if __name__ == "__main__":
    main()
