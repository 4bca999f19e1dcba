"""The model bundle: which files make up one LTX-2.3 A2Vid model, checked before anything loads.

Field names follow the upstream CLI (``checkpoint_path``, ``distilled_lora``, ``spatial_upsampler_path``,
``gemma_root``, ``quantization``) so that LTX users recognise them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ltxcore.checkpoint_header import read_header
from ltxcore.errors import BundleError

QUANTIZATIONS = ("none", "fp8-cast", "fp8-scaled")

# The released LTX-2.3 file names, for a bundle given as one folder.
RELEASED_NAMES = {
    "checkpoint_path": "ltx-2.3-22b-dev.safetensors",
    "distilled_lora": "ltx-2.3-22b-distilled-lora-384.safetensors",
    "spatial_upsampler_path": "ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
    "gemma_root": "gemma-3-12b-it-qat-q4_0-unquantized",
}


def read_safetensors_header(path: Path, role: str) -> dict:
    """Parse a safetensors header without loading tensors; refuse anything that is not safetensors."""
    try:
        with open(path, "rb") as f:
            return read_header(f, f"{role} {path}")
    except OSError as e:
        raise BundleError(f"{role} {path} is not a readable safetensors file: {e}.") from e


@dataclass(frozen=True)
class ModelBundle:
    """Four files plus a quantization choice. Construct with :meth:`from_paths` or :meth:`from_folder`.

    The distilled LoRA's strength is per item (``RenderRequest.distilled_lora_strength``), since the
    engine applies the LoRA at run time.
    """

    checkpoint_path: str
    distilled_lora: str
    spatial_upsampler_path: str
    gemma_root: str
    quantization: str = "none"

    @classmethod
    def from_folder(cls, folder: str | Path, quantization: str = "none") -> ModelBundle:
        """A folder holding the released file names (the Gemma root as a sub-folder)."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise BundleError(f"Model folder {folder} does not exist or is not a folder.")
        paths = {role: str(folder / name) for role, name in RELEASED_NAMES.items()}
        return cls.from_paths(**paths, quantization=quantization)

    @classmethod
    def from_paths(cls, **fields) -> ModelBundle:
        bundle = cls(**{k: str(Path(v).expanduser()) if k in RELEASED_NAMES else v for k, v in fields.items()})
        bundle.validate()
        return bundle

    def validate(self) -> None:
        """Check every file exists and is safetensors; read nothing but headers."""
        if self.quantization not in QUANTIZATIONS:
            raise BundleError(f"quantization {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}.")
        for role in ("checkpoint_path", "distilled_lora", "spatial_upsampler_path"):
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
        if self.checkpoint_config() == {}:
            raise BundleError(f"checkpoint_path {self.checkpoint_path} has no 'config' in its safetensors metadata.")

    def checkpoint_metadata(self) -> dict:
        return read_safetensors_header(Path(self.checkpoint_path), "checkpoint_path").get("__metadata__") or {}

    def checkpoint_config(self) -> dict:
        raw = self.checkpoint_metadata().get("config")
        return json.loads(raw) if raw else {}

    def model_version(self) -> str:
        return self.checkpoint_metadata().get("model_version", "unknown")

    def gemma_shards(self) -> tuple[str, ...]:
        return tuple(str(p) for p in sorted(Path(self.gemma_root).rglob("model*.safetensors")))

    def gemma_config(self) -> dict:
        config_path = next(Path(self.gemma_root).rglob("config.json"))
        return json.loads(config_path.read_text())

    def paths(self) -> dict[str, str]:
        """The four parts by their upstream names."""
        return {role: getattr(self, role) for role in RELEASED_NAMES}

    def describe(self) -> str:
        lines = [f"model version {self.model_version()}, quantization {self.quantization}"]
        lines += [f"  {role}: {value}" for role, value in self.paths().items()]
        return "\n".join(lines)
