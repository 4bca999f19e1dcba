"""The model bundle: which files make up one LTX-2.3 A2Vid model, checked before anything loads.

Field names follow the upstream CLI (``checkpoint_path``, ``distilled_lora``, ``spatial_upsampler_path``,
``gemma_root``, ``quantization``) so that LTX users recognise them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ltxcore.checkpoint_header import read_safetensors_header
from ltxcore.errors import BundleError

# ``fp8-compact``: ``fp8-scaled`` with the LoRA buffers in FP8 too (``ltxcore/adapters.py``), so that a final fits
# a 32 GB card; opt-in, as it moves the final latent further from bf16 (BENCHMARKS.md).
Quantization = Literal["none", "fp8-cast", "fp8-scaled", "fp8-compact"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
SCALED_FP8 = ("fp8-scaled", "fp8-compact")  # the transformer blocks as real FP8 GEMMs (``ltxcore/fp8.py``)
# Which 22B checkpoint a worker holds (one per worker): ``dev`` renders every pipeline, with the distilled LoRA
# where a pipeline uses it; ``distilled`` (the released distilled checkpoint, no LoRA) renders drafts only.
TRANSFORMERS = ("dev", "distilled")

# The released LTX-2.3 file names, for a bundle given as one folder.
RELEASED_NAMES = {
    "checkpoint_path": "ltx-2.3-22b-dev.safetensors",
    "distilled_lora": "ltx-2.3-22b-distilled-lora-384.safetensors",
    "spatial_upsampler_path": "ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
    "gemma_root": "gemma-3-12b-it-qat-q4_0-unquantized",
}
# Released files a bundle may hold besides those: the distilled checkpoint, for ``transformer="distilled"``.
OPTIONAL_NAMES = {"distilled_checkpoint_path": "ltx-2.3-22b-distilled.safetensors"}


@dataclass(frozen=True)
class ModelBundle:
    """Four files (five with the distilled checkpoint), a quantization, and which transformer to load.
    Construct with :meth:`from_paths` or :meth:`from_folder`.

    The distilled LoRA's strength is per item (``RenderRequest.distilled_lora_strength``), since the
    engine applies the LoRA at run time.
    """

    checkpoint_path: str
    distilled_lora: str
    spatial_upsampler_path: str
    gemma_root: str
    quantization: str = "none"
    distilled_checkpoint_path: str | None = None
    transformer: str = "dev"

    @classmethod
    def from_folder(cls, folder: str | Path, quantization: str = "none", transformer: str = "dev") -> ModelBundle:
        """A folder holding the released file names (the Gemma root as a sub-folder; the distilled checkpoint
        is picked up when present: ``transformer="distilled"`` needs it)."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise BundleError(f"Model folder {folder} does not exist or is not a folder.")
        paths = {role: str(folder / name) for role, name in RELEASED_NAMES.items()}
        for role, name in OPTIONAL_NAMES.items():
            if (folder / name).is_file():
                paths[role] = str(folder / name)
        return cls.from_paths(**paths, quantization=quantization, transformer=transformer)

    @classmethod
    def from_paths(cls, **fields) -> ModelBundle:
        files = {**RELEASED_NAMES, **OPTIONAL_NAMES}
        bundle = cls(**{k: str(Path(v).expanduser()) if k in files and v else v for k, v in fields.items()})
        bundle.validate()
        return bundle

    @property
    def model_checkpoint(self) -> str:
        """The checkpoint the diffusion model, VAEs and text connectors load from."""
        if self.transformer != "distilled":
            return self.checkpoint_path
        if self.distilled_checkpoint_path is None:
            raise BundleError(
                f"transformer 'distilled' needs {OPTIONAL_NAMES['distilled_checkpoint_path']} in the bundle."
            )
        return self.distilled_checkpoint_path

    def validate(self) -> None:
        """Check every file exists and is safetensors; read nothing but headers."""
        if self.quantization not in QUANTIZATIONS:
            raise BundleError(f"quantization {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}.")
        if self.transformer not in TRANSFORMERS:
            raise BundleError(f"transformer {self.transformer!r} is not one of {', '.join(TRANSFORMERS)}.")
        if self.transformer == "distilled" and not self.distilled_checkpoint_path:
            raise BundleError(
                f"transformer distilled needs the distilled checkpoint ({OPTIONAL_NAMES['distilled_checkpoint_path']})"
                " in the bundle folder, or given as distilled_checkpoint_path; else use transformer dev."
            )
        for role in ("checkpoint_path", "distilled_lora", "spatial_upsampler_path", *self.optional_paths()):
            path = Path(getattr(self, role))
            if not path.is_file():
                raise BundleError(f"{role} {path} does not exist. Point it at the released .safetensors file.")
            if path.suffix != ".safetensors":
                raise BundleError(f"{role} {path} is not a .safetensors file; only safetensors are ever loaded.")
            read_safetensors_header(path, role)
        root = Path(self.gemma_root)
        if not root.is_dir():
            raise BundleError(f"gemma_root {root} is not a folder. It must hold the Gemma-3 config and weights.")
        for needed in ("config.json", "tokenizer.model", "preprocessor_config.json"):
            if not any(root.rglob(needed)):
                raise BundleError(f"gemma_root {root} has no {needed}.")
        shards = sorted(root.rglob("model*.safetensors"))
        if not shards:
            raise BundleError(f"gemma_root {root} has no model*.safetensors weights.")
        for shard in shards:
            read_safetensors_header(shard, "gemma_root")
        for role, path in {"checkpoint_path": self.checkpoint_path, **self.optional_paths()}.items():
            if not self._metadata(path, role).get("config"):
                raise BundleError(f"{role} {path} has no 'config' in its safetensors metadata.")

    def optional_paths(self) -> dict[str, str]:
        """The optional files this bundle holds, by role."""
        return {role: getattr(self, role) for role in OPTIONAL_NAMES if getattr(self, role)}

    @staticmethod
    def _metadata(path: str, role: str) -> dict:
        return read_safetensors_header(Path(path), role).get("__metadata__") or {}

    def checkpoint_metadata(self) -> dict:
        return self._metadata(self.checkpoint_path, "checkpoint_path")

    def model_version(self) -> str:
        return self.checkpoint_metadata().get("model_version", "unknown")

    def gemma_shards(self) -> tuple[str, ...]:
        return tuple(str(p) for p in sorted(Path(self.gemma_root).rglob("model*.safetensors")))

    def gemma_config(self) -> dict:
        config_path = next(Path(self.gemma_root).rglob("config.json"))
        return json.loads(config_path.read_text())

    def paths(self) -> dict[str, str]:
        """The four parts by their upstream names, and the distilled checkpoint when the transformer is it."""
        paths = {role: getattr(self, role) for role in RELEASED_NAMES}
        return {**paths, **self.optional_paths()} if self.transformer == "distilled" else paths

    def describe(self) -> str:
        uses = {"dev": "dev checkpoint, distilled LoRA at run time", "distilled": "distilled checkpoint, no LoRA"}
        lines = [
            f"model version {self.model_version()}, quantization {self.quantization}, "
            f"transformer {self.transformer} ({uses[self.transformer]})"
        ]
        lines += [f"  {role}: {value}" for role, value in self.paths().items()]
        lines += [
            f"  {role}: {value} (unused; workers started with --transformer distilled load it)"
            for role, value in self.optional_paths().items()
            if role not in self.paths()
        ]
        return "\n".join(lines)
