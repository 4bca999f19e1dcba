"""A manifest's ``model:`` section: its keys, the bundle it names, and the identity fingerprints record.

The section is ``bundle: FOLDER`` (a local folder or a URI holding the released file names) and/or the
upstream names of the four parts, plus a quantization. A bundle's identity is the name, size and mtime of
every file it holds (``storage.file_identity``, the same record media files get), its quantization and,
for a run on the distilled checkpoint, that transformer: a replaced checkpoint or a new FP8 policy
re-renders the items it touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ltxcore.bundle import OPTIONAL_NAMES, RELEASED_NAMES, SCALED_FP8, ModelBundle, Quantization
from ltxcore.errors import BundleError
from storage.fs import file_identity, files_under, is_uri, join


class ModelSection(BaseModel):
    """The model bundle: a folder with the released file names and/or each file, local or s3://, gs://, file://."""

    model_config = ConfigDict(extra="forbid")

    bundle: str | None = Field(None, description="a folder (or URI) holding the released LTX-2.3 file names")
    checkpoint_path: str | None = Field(None, description=f"overrides {RELEASED_NAMES['checkpoint_path']}")
    distilled_lora: str | None = Field(None, description=f"overrides {RELEASED_NAMES['distilled_lora']}")
    spatial_upsampler_path: str | None = Field(
        None, description=f"overrides {RELEASED_NAMES['spatial_upsampler_path']}"
    )
    gemma_root: str | None = Field(None, description=f"overrides the Gemma-3 folder {RELEASED_NAMES['gemma_root']}")
    distilled_checkpoint_path: str | None = Field(
        None,
        description=f"overrides {OPTIONAL_NAMES['distilled_checkpoint_path']}, which workers started with "
        "--transformer distilled load",
    )
    quantization: Quantization | None = Field(
        None,
        description="default: fp8-scaled on FP8 GPUs, fp8-cast on other GPUs, none on CPU; fp8-compact (fp8-scaled "
        "with the LoRAs in FP8 too) fits a final in 32 GB",
    )


MODEL_KEYS = tuple(ModelSection.model_fields)


def model_paths(section: dict, transformer: str = "dev") -> dict[str, str]:
    """The bundle paths of a ``model:`` section: ``bundle: FOLDER`` (local or URI) and/or the upstream names
    (``checkpoint_path``, ``distilled_lora``, ``spatial_upsampler_path``, ``gemma_root``), and with the
    distilled transformer also ``distilled_checkpoint_path`` (only then: a dev run's identity never names it)."""
    folder = section.get("bundle")
    roles = {**RELEASED_NAMES, **(OPTIONAL_NAMES if transformer == "distilled" else {})}
    paths = {role: join(folder, name) for role, name in roles.items()} if folder else {}
    paths.update({k: v for k, v in section.items() if k in roles and v})
    missing = [role for role in roles if role not in paths]
    if missing:
        raise BundleError(f"the model section lacks {', '.join(missing)}; give bundle: FOLDER or each path.")
    return paths


def open_bundle(section: dict, quantization: str | None = None, transformer: str = "dev") -> ModelBundle:
    """A local bundle, validated (headers only). Remote bundles are checked by the workers that fetch them."""
    quantization = quantization or section.get("quantization", "none")
    paths = model_paths(section, transformer)
    return ModelBundle.from_paths(**paths, quantization=quantization, transformer=transformer)


def bundle_files(paths: dict[str, str]) -> dict[str, list[dict]]:
    """Every file of a bundle (local or remote) by role, with its name, size and mtime."""
    return {
        role: [{"name": name, **file_identity(uri)} for name, uri in files_under(path)] for role, path in paths.items()
    }


def quantization_identity(quantization: str) -> dict:
    """What fingerprints record of a quantization: its name, and for the scaled FP8 ones which blocks stay
    bf16, so that outputs of an older FP8 policy never count as done under a newer one."""
    if quantization not in SCALED_FP8:
        return {"quantization": quantization}
    from ltxcore.fp8 import BF16_EDGE_BLOCKS  # torch: only when the policy is asked for

    return {"quantization": quantization, "fp8_bf16_edge_blocks": BF16_EDGE_BLOCKS}


def bundle_identity(paths: dict[str, str], quantization: str, transformer: str = "dev") -> dict:
    """What fingerprints record of a bundle; ``transformer`` only when it is not ``dev``, so that the identity
    of a dev bundle stays what it was before the distilled checkpoint could be chosen."""
    named = {"transformer": transformer} if transformer != "dev" else {}
    return {**quantization_identity(quantization), **named, "files": bundle_files(paths)}


@dataclass(frozen=True)
class Model:
    """The bundle a run renders with: its paths (local or URIs), quantization, transformer, and identity."""

    paths: dict
    quantization: str
    identity: dict
    transformer: str = "dev"


def resolve_model(section: dict, quantization: str, transformer: str = "dev") -> Model:
    """The run's model. A local bundle is checked here; a remote one by the workers that fetch it."""
    paths = model_paths(section, transformer)
    if not any(is_uri(p) for p in paths.values()):
        open_bundle(section, quantization, transformer)
    return Model(paths, quantization, bundle_identity(paths, quantization, transformer), transformer)
