"""Writes the safetensors format tensor by tensor, from any device, without a host copy of the whole file: a
40 GB checkpoint (or a 22 GB quantized transformer) would need twice that in host memory through
``safetensors.torch.save_file``, which builds the file's bytes first."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64",
                      torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL",
                      torch.float8_e4m3fn: "F8_E4M3"}  # fmt: skip


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """``tensors`` (each contiguous or not, on any device) and string ``metadata`` to ``path``."""
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
