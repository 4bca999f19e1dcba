"""``fp8-scaled``: the transformer blocks' linears computed as real FP8 GEMMs.

Upstream's ``fp8-cast`` stores weights in FP8 but upcasts them to bf16 on every call, so it saves memory
and costs time. Here weights are quantized once from the bf16 checkpoint with one scale per output row,
activations are quantized per token on the fly, and ``torch._scaled_mm`` multiplies in FP8 (Ada, Hopper
and newer) with Hopper's fast accumulation: exact FP32 accumulation measured 7% slower at full size for
no gain in accuracy (3.30e-2 vs 3.33e-2 final-latent error against bf16). On a CPU the same quantized
numbers are multiplied in float32, which keeps the numerics testable anywhere.
"""

from __future__ import annotations

import torch
from ltx_core.model.transformer import LTXModel

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
ALIGN = 16  # _scaled_mm needs both matrix dimensions to be multiples of 16


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scaled e4m3: returns (fp8 values, float32 scale per row) with t ~= values * scale."""
    amax = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12)
    scale = amax / FP8_MAX
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


class Fp8Linear(torch.nn.Module):
    """A Linear whose weight lives in FP8 (one scale per output channel)."""

    weight: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, scale = quantize_rows(linear.weight.detach())
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", scale.reshape(1, -1).contiguous())  # (1, out)
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        values, scale = quantize_rows(rows)
        if rows.is_cuda:
            out = torch._scaled_mm(  # pyright: ignore[reportPrivateImportUsage]  # the public FP8 GEMM entry
                values,
                self.weight.t(),
                scale_a=scale,
                scale_b=self.weight_scale,
                bias=self.bias,
                out_dtype=x.dtype,
                use_fast_accum=True,
            )
        else:
            out = (values.float() * scale) @ (self.weight.float() * self.weight_scale.t()).t()
            out = (out + self.bias.float() if self.bias is not None else out).to(x.dtype)
        return out.reshape(*shape[:-1], self.out_features)


# The first and last blocks stay bf16: at full size this brings the final-latent error against bf16 from
# 3.33e-2 (all blocks FP8) to 2.90e-2 for 4% more transformer time (BENCHMARKS.md).
BF16_EDGE_BLOCKS = 4


def _swap_linears(block: torch.nn.Module) -> int:
    """Replace every aligned ``nn.Linear`` in ``block`` by an :class:`Fp8Linear`; return the count."""
    names = [
        name
        for name, m in block.named_modules()
        if isinstance(m, torch.nn.Linear) and m.in_features % ALIGN == 0 and m.out_features % ALIGN == 0
    ]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = block.get_submodule(parent_name)
        setattr(parent, attr, Fp8Linear(getattr(parent, attr)))
    return len(names)


def fp8_block_indices(count: int, bf16_edge_blocks: int = BF16_EDGE_BLOCKS) -> range:
    """The blocks that run in FP8: all but the first and last ``bf16_edge_blocks`` (fewer on small models)."""
    edge = min(bf16_edge_blocks, count // 4)  # small test models keep most blocks FP8
    return range(edge, count - edge)


def quantize_blocks(
    transformer: LTXModel, bf16_edge_blocks: int = BF16_EDGE_BLOCKS, device: torch.device | None = None
) -> int:
    """Swap the aligned linears of the FP8 blocks (:func:`fp8_block_indices`) for :class:`Fp8Linear`; return
    the count. With ``device``, the model (built on the host) moves there block by block, each block
    quantized on arrival, so the bf16 transformer never sits on the device whole: the load peak is the
    FP8 model plus one bf16 block."""
    blocks = transformer.transformer_blocks
    if device is not None:
        for name, child in transformer.named_children():
            if name != "transformer_blocks":
                child.to(device)
        for tensor in [*transformer.parameters(recurse=False), *transformer.buffers(recurse=False)]:
            tensor.data = tensor.data.to(device)
    fp8 = fp8_block_indices(len(blocks), bf16_edge_blocks)
    swapped = 0
    for index, block in enumerate(blocks):
        if device is not None:
            block.to(device)
        if index in fp8:
            swapped += _swap_linears(block)
    return swapped
