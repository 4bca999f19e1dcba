"""What a safetensors checkpoint holds, read from its JSON header alone: no weight is loaded.

Validation uses it to check a manifest against the model a run will load (the transformer's depth for
``stg_blocks``) before any worker starts, so a value the model cannot take is refused up front.
"""

from __future__ import annotations

import re
from pathlib import Path

from ltxcore.bundle import read_safetensors_header
from ltxcore.errors import BundleError

# upstream's key of the diffusion transformer's blocks in the released checkpoint
TRANSFORMER_BLOCK = re.compile(r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.")


def tensor_shapes(path: str | Path, role: str = "checkpoint_path") -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, from the header."""
    shapes = {}
    for name, info in read_safetensors_header(Path(path), role).items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not isinstance(info.get("shape"), list):
            raise BundleError(f"{role} {path}: the header entry of {name!r} has no shape.")
        shapes[name] = tuple(info["shape"])
    return shapes


def transformer_layer_count(path: str | Path) -> int | None:
    """The number of transformer blocks the checkpoint holds (blocks 0..n-1); None if it holds none."""
    blocks = {int(m.group(1)) for name in tensor_shapes(path) if (m := TRANSFORMER_BLOCK.match(name))}
    return max(blocks) + 1 if blocks else None
