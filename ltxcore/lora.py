"""The distilled LoRA as a runtime adapter on the resident transformer.

Upstream fuses the LoRA by building a second transformer from disk. We leave the base weights
untouched and add ``strength * B(A(x))`` beside each targeted Linear, so stage 1 and stage 2 share one
model, the strength can differ per item, and no drift can build up over thousands of items.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, SafetensorsStateDictLoader

from ltxcore.errors import BundleError


class LoraLinear(torch.nn.Module):
    """A Linear plus a low-rank branch that is skipped entirely while switched off.

    The strength is a tensor, not a Python float, so a compiled graph serves every per-item strength.
    """

    down: torch.Tensor
    up: torch.Tensor
    strength: torch.Tensor

    def __init__(self, base: torch.nn.Module, down: torch.Tensor, up: torch.Tensor):
        super().__init__()
        self.base = base
        self.register_buffer("down", down, persistent=False)  # lora_A: (rank, in)
        self.register_buffer("up", up, persistent=False)  # lora_B: (out, rank)
        self.register_buffer("strength", torch.zeros((), dtype=down.dtype, device=down.device), persistent=False)
        self.enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.enabled:
            return y
        low_rank = torch.nn.functional.linear(torch.nn.functional.linear(x, self.down), self.up)
        return y + low_rank * self.strength


class LoraAdapter:
    """Installs :class:`LoraLinear` on every transformer Linear the LoRA file names."""

    @classmethod
    def load(cls, transformer: torch.nn.Module, lora_path: str) -> LoraAdapter:
        """Read a LoRA in the released (ComfyUI) naming from safetensors and install it."""
        device = next(transformer.parameters()).device
        sd = SafetensorsStateDictLoader().load(lora_path, sd_ops=LTXV_LORA_COMFY_RENAMING_MAP, device=device).sd
        return cls(transformer, sd, lora_path)

    def __init__(
        self,
        transformer: torch.nn.Module,
        sd: dict[str, torch.Tensor],
        lora_path: str,
        dtype: torch.dtype = torch.bfloat16,
    ):
        targets = sorted({k.rsplit(".lora_", 1)[0] for k in sd if ".lora_A." in k})
        if not targets:
            raise BundleError(f"distilled_lora {lora_path} holds no lora_A/lora_B weights.")
        self.layers: list[LoraLinear] = []
        for name in targets:
            parent_name, attr = name.rsplit(".", 1)
            try:
                parent = transformer.get_submodule(parent_name)
                base = getattr(parent, attr)
            except AttributeError as e:
                raise BundleError(f"distilled_lora {lora_path} targets {name}, which the transformer lacks.") from e
            down, up = sd[f"{name}.lora_A.weight"].to(dtype), sd[f"{name}.lora_B.weight"].to(dtype)
            out_features, in_features = up.shape[0], down.shape[1]
            if (getattr(base, "out_features", out_features), getattr(base, "in_features", in_features)) != (
                out_features,
                in_features,
            ):
                raise BundleError(
                    f"distilled_lora {lora_path}: {name} has shape {tuple(up.shape)}x{tuple(down.shape)}"
                    " which does not fit the transformer."
                )
            layer = LoraLinear(base, down, up)
            setattr(parent, attr, layer)
            self.layers.append(layer)

    @contextmanager
    def active(self, strength: float):
        """Apply the LoRA at ``strength`` inside the block; always switched off again afterwards."""
        for layer in self.layers:
            layer.strength.fill_(float(strength))
            layer.enabled = strength != 0
        try:
            yield
        finally:
            for layer in self.layers:
                layer.enabled = False
