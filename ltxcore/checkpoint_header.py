"""What a safetensors file holds, read from its header alone: tensor names, shapes and dtypes.

The header of the 40 GB LTX-2.3 checkpoint is a few hundred kB, so validation can check a user LoRA
against the transformer it will adapt, and count the transformer's blocks (for ``stg_blocks``), before any weight loads.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import BinaryIO

from ltxcore.errors import BundleError

HEADER_LIMIT = 100 * 1024 * 1024
_BLOCK = re.compile(r"^transformer_blocks\.(\d+)\.")


def read_header(stream: BinaryIO, what: str) -> dict:
    """The JSON header of an open safetensors file; ``what`` names the file in errors. Anything that is
    not safetensors is refused."""
    try:
        raw_len = stream.read(8)
        if len(raw_len) < 8:
            raise BundleError(f"{what} is not a safetensors file: it is shorter than a header.")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len == 0 or header_len > HEADER_LIMIT:
            raise BundleError(f"{what} is not a safetensors file (bad header length {header_len}).")
        header = json.loads(stream.read(header_len))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{what} is not a readable safetensors file: {e}.") from e
    if not isinstance(header, dict):
        raise BundleError(f"{what} is not a safetensors file: its header is not a JSON object.")
    return header


def read_safetensors_header(path: str | Path, role: str) -> dict:
    """The header of the safetensors file at ``path`` (``role`` names it in errors: ``checkpoint_path``, a
    LoRA, ...), without loading tensors; anything that is not safetensors is refused."""
    try:
        with open(path, "rb") as f:
            return read_header(f, f"{role} {path}")
    except OSError as e:
        raise BundleError(f"{role} {path} is not a readable safetensors file: {e}.") from e


def tensor_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a header (its ``__metadata__`` left out)."""
    return {
        name: tuple(entry["shape"])
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("shape"), list)
    }


def transformer_shapes(checkpoint_path: str | Path) -> dict[str, tuple[int, ...]]:
    """{parameter name inside the transformer (``transformer_blocks.0.attn1.to_q.weight``): shape} of a
    released checkpoint, named by upstream's own key map; the text connectors stored beside it are left out."""
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP  # torch: not for ``ltx-batch --help``
    from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS

    header = read_safetensors_header(checkpoint_path, "checkpoint_path")
    out = {}
    for key, shape in tensor_shapes(header).items():
        name = LTXV_MODEL_COMFY_RENAMING_MAP.apply_to_key(key)
        if name is not None and EMBEDDINGS_PROCESSOR_KEY_OPS.apply_to_key(key) is None:
            out[name] = shape
    return out


def linear_shapes(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, int]]:
    """{Linear's module name: (out, in)}: every 2-D ``.weight`` of ``shapes``."""
    weights = {name.removesuffix(".weight"): shape for name, shape in shapes.items() if name.endswith(".weight")}
    return {name: shape for name, shape in weights.items() if len(shape) == 2}


def block_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """How many transformer blocks ``shapes`` (from :func:`transformer_shapes`) hold."""
    indices = {int(m.group(1)) for name in shapes if (m := _BLOCK.match(name))}
    return max(indices) + 1 if indices else 0


def transformer_layer_count(checkpoint_path: str | Path) -> int | None:
    """The number of transformer blocks a released checkpoint holds; None if it holds none."""
    return block_count(transformer_shapes(checkpoint_path)) or None
