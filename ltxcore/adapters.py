"""LoRAs as runtime adapters on the resident transformer: the distilled LoRA and the items' user LoRAs.

Upstream fuses LoRAs by rebuilding the transformer from disk with the deltas added. We leave the base
weights untouched and add one low-rank branch beside each adapted Linear, so both stages share one model,
strengths differ per item, and no drift builds up over thousands of items.

One branch serves every active adapter. A layer's ``down`` (ranks x in) and ``up`` (out x ranks) buffers
hold the adapters' ranks side by side, in two regions: first the *staged* user LoRAs (the set the current
item uses, copied in when the set changes), then the *pinned* adapters (the distilled LoRA, there for the
engine's life). One ``scale`` vector, shared by all layers, holds each rank's strength. A layer runs the
ranks of the regions holding an active adapter that adapts it, and skips the branch when there is none,
so strength 0 is exactly no LoRA.

Compilation and CUDA graphs. Strengths are tensor values, so one compiled graph serves every strength; a
compiled block specialises only to its layers' rank ranges (user, user + distilled, distilled: a handful),
never to how many adapters are stacked. A captured CUDA graph replays the buffers it captured, so a new
user set is *copied into* the same buffers, and graphs captured for an earlier set with the same ranges stay
valid. Buffers are replaced only when a set needs more staged ranks than any before (or a Linear is adapted
for the first time); :attr:`Adapters.key` changes whenever that happens or any layer's range differs, and
the block loop keys its captured graphs by it.

User LoRAs are read once per worker and held in host memory (pinned on a GPU), at most ``max_loaded`` of
them, the least recently used evicted; device memory holds only the distilled LoRA and the staged set.

FP8 storage (``fp8=True``: the ``fp8-compact`` quantization): the buffers hold e4m3 values, each rank's
``down`` row and ``up`` column scaled to its own largest value, and a per-layer ``qscale`` holds the product
of the two scales per rank. Since ``up @ diag(s) @ down == (up / s_up) @ diag(s * s_up * s_down) @ (down /
s_down)``, the branch multiplies its low-rank activations by ``scale * qscale`` and runs the same two GEMMs
on the upcast buffers: half the memory of bf16 (the distilled LoRA, rank 384, is 8.1 GB in bf16). Without
``fp8`` nothing of this exists and the branch is the bf16 one, unchanged.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import torch

from ltxcore.lora import LoraWeights, lora_file_identity, read_lora

RANK_STEP = 16  # staged ranks are allotted in steps: tensor-core friendly, and fewer distinct shapes
FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max


class AdaptedLinear(torch.nn.Module):
    """A Linear plus one low-rank branch over ranks ``lo:hi`` of its buffers (skipped when empty)."""

    down: torch.Tensor
    up: torch.Tensor
    scale: torch.Tensor
    qscale: torch.Tensor | None

    def __init__(self, base: torch.nn.Module, scale: torch.Tensor, storage: torch.dtype):
        super().__init__()
        self.base = base
        out_features, in_features = _shape(base)
        like = {"dtype": storage, "device": scale.device}
        self.register_buffer("down", torch.zeros(scale.numel(), in_features, **like), persistent=False)
        self.register_buffer("up", torch.zeros(out_features, scale.numel(), **like), persistent=False)
        self.register_buffer("scale", scale, persistent=False)  # the same tensor in every layer
        qscale = torch.zeros_like(scale) if storage == FP8 else None  # this layer's per-rank FP8 scales
        self.register_buffer("qscale", qscale, persistent=False)
        self.lo = self.hi = 0  # Python ints: compiled blocks specialise to them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.lo == self.hi:
            return y
        ranks = slice(self.lo, self.hi)
        if self.qscale is None:
            low = torch.nn.functional.linear(x, self.down[ranks]) * self.scale[ranks]
            return y + torch.nn.functional.linear(low, self.up[:, ranks])
        down, up = self.down[ranks].to(x.dtype), self.up[:, ranks].to(x.dtype)
        low = torch.nn.functional.linear(x, down) * (self.scale[ranks] * self.qscale[ranks])
        return y + torch.nn.functional.linear(low, up)


def _shape(linear: torch.nn.Module) -> tuple[int, int]:
    return int(linear.out_features), int(linear.in_features)  # pyright: ignore[reportArgumentType]  # a Linear's


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """{name: (out, in)} of every Linear of ``model`` (plain, FP8 or upstream's upcasting ones)."""
    return {
        name: _shape(m)
        for name, m in model.named_modules()
        if hasattr(m, "in_features") and hasattr(m, "out_features") and not isinstance(m, AdaptedLinear)
    }


@dataclass(frozen=True)
class _Slot:
    """An adapter's ranks ``start:stop`` within its region, and the layers it adapts."""

    start: int
    stop: int
    layers: frozenset[str]


class Adapters:
    """Named LoRAs on one transformer. The engine says which apply, and how strongly, per block of work:
    ``with adapters.active({"distilled": 1.0, path: 0.8}): ...``."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype, max_loaded: int = 4, fp8: bool = False):
        self.model = model
        self.dtype = dtype
        self.storage = FP8 if fp8 else dtype  # what the buffers hold (module docstring: FP8 storage)
        self.device = next(model.parameters()).device
        self.max_loaded = max_loaded
        self.linears = linear_shapes(model)
        self.layers: dict[str, AdaptedLinear] = {}
        self.capacity = 0  # staged ranks
        self.pinned: dict[str, _Slot] = {}  # ranks counted from the end of the staged region
        self.staged: dict[str, _Slot] = {}
        self.loaded: OrderedDict[str, LoraWeights] = OrderedDict()  # user LoRAs, least recently used first
        self.reads = 0  # LoRA files read so far
        self.scale = torch.zeros(0, dtype=dtype, device=self.device)
        self.strengths: dict[str, float] = {}  # in effect now
        self.key: Hashable = None  # what a captured CUDA graph of the blocks depends on

    @property
    def width(self) -> int:
        return self.scale.numel()

    def ranks(self, name: str) -> slice:
        """Where adapter ``name`` sits in every layer's buffers."""
        if name in self.pinned:
            slot, offset = self.pinned[name], self.capacity
        else:
            slot, offset = self.staged[name], 0
        return slice(offset + slot.start, offset + slot.stop)

    # --- loading ------------------------------------------------------------------------------

    def pin(self, name: str, path: str) -> None:
        """Read a LoRA and keep it on the device for good (the distilled LoRA): read straight onto the device,
        or, stored as FP8, read to the host and quantized layer by layer on the device (no bf16 copy there)."""
        source = torch.device("cpu") if self.storage == FP8 else self.device
        with _allocating():
            self.pin_weights(name, read_lora(path, self.linears, self.dtype, source))

    def pin_weights(self, name: str, weights: LoraWeights) -> None:
        """Keep ``weights`` (already on the device) as adapter ``name``; ``weights`` is emptied on the way."""
        with _allocating():
            start, rank, adapted = self.width - self.capacity, weights.rank, frozenset(weights.layers)
            self._relayout(self.capacity, start + rank)
            for layer_name in list(weights.layers):
                down, up = weights.layers.pop(layer_name)  # freed as it goes: no second copy on the device
                self._write(self._layer(layer_name), self.capacity + start, down, up)
        self.pinned[name] = _Slot(start, start + rank, adapted)

    def load(self, path: str) -> str:
        """Make the user LoRA at ``path`` resident (read only if new or changed on disk); its name."""
        held = self.loaded.get(path)
        if held is None or held.identity != lora_file_identity(path):
            with _allocating():
                self.loaded[path] = read_lora(path, self.linears, self.dtype, torch.device("cpu"), pin=self._pin)
            self.reads += 1
            if path in self.staged:
                self.staged = {}  # the staged copy is of the old file
        self.loaded.move_to_end(path)
        while len(self.loaded) > self.max_loaded:
            self.loaded.popitem(last=False)
        return path

    @property
    def _pin(self) -> bool:
        return self.device.type == "cuda"

    # --- applying -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def active(self, strengths: dict[str, float]):
        """Apply the named adapters at these strengths inside the block (absent or 0: not applied, exactly);
        every branch is switched off again afterwards. User LoRAs must have been :meth:`load`-ed."""
        on = {name: float(s) for name, s in strengths.items() if s != 0}
        users = sorted(name for name in on if name not in self.pinned)
        if any(name not in self.staged for name in users):
            self._stage(users)
        self._apply(on)
        try:
            yield
        finally:
            self._apply({})

    def _apply(self, on: dict[str, float]) -> None:
        with torch.no_grad():
            self.scale.zero_()
            for name, strength in on.items():
                self.scale[self.ranks(name)] = strength
        staged = set().union(*(self.staged[n].layers for n in on if n in self.staged))
        pinned = [(self.ranks(n), self.pinned[n].layers) for n in on if n in self.pinned]
        ranges = []
        for name, layer in self.layers.items():
            spans = [(0, self.capacity)] if name in staged else []
            spans += [(r.start, r.stop) for r, layers in pinned if name in layers]
            layer.lo, layer.hi = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else (0, 0)
            ranges.append((layer.lo, layer.hi))
        self.strengths = on
        self.key = (self.width, tuple(ranges)) if on else None

    # --- layout -------------------------------------------------------------------------------

    def _stage(self, users: list[str]) -> None:
        """Copy the user LoRAs ``users`` into every layer's staged region (growing it if it is too small)."""
        need = sum(self.loaded[name].rank for name in users)
        with _allocating():
            if need > self.capacity:
                self._relayout(-(-need // RANK_STEP) * RANK_STEP, self.width - self.capacity)
            for layer in self.layers.values():
                layer.down[: self.capacity] = 0
                layer.up[:, : self.capacity] = 0
                if layer.qscale is not None:
                    layer.qscale[: self.capacity] = 0
            self.staged, start = {}, 0
            for name in users:
                weights = self.loaded[name]
                for layer_name, (down, up) in weights.layers.items():
                    self._write(self._layer(layer_name), start, down, up)
                self.staged[name] = _Slot(start, start + weights.rank, frozenset(weights.layers))
                start += weights.rank

    def _relayout(self, capacity: int, pinned_width: int) -> None:
        """New buffers: ``capacity`` staged ranks, then ``pinned_width`` pinned ones, the old ranks kept."""
        old_capacity, old_pinned = self.capacity, self.width - self.capacity
        self.scale = torch.zeros(capacity + pinned_width, dtype=self.dtype, device=self.device)
        for layer in self.layers.values():
            down = layer.down.new_zeros(self.scale.numel(), layer.down.shape[1])
            up = layer.up.new_zeros(layer.up.shape[0], self.scale.numel())
            down[:old_capacity], up[:, :old_capacity] = layer.down[:old_capacity], layer.up[:, :old_capacity]
            pinned = slice(capacity, capacity + old_pinned)
            down[pinned], up[:, pinned] = layer.down[old_capacity:], layer.up[:, old_capacity:]
            layer.down, layer.up, layer.scale = down, up, self.scale
            if layer.qscale is not None:
                qscale = torch.zeros_like(self.scale)
                qscale[:old_capacity], qscale[pinned] = layer.qscale[:old_capacity], layer.qscale[old_capacity:]
                layer.qscale = qscale
        self.capacity = capacity

    def _layer(self, name: str) -> AdaptedLinear:
        """The branch on Linear ``name``, installed on first use."""
        layer = self.layers.get(name)
        if layer is None:
            parent_name, _, attr = name.rpartition(".")
            parent = self.model.get_submodule(parent_name)
            layer = self.layers[name] = AdaptedLinear(getattr(parent, attr), self.scale, self.storage)
            setattr(parent, attr, layer)
        return layer

    @staticmethod
    def _write(layer: AdaptedLinear, start: int, down: torch.Tensor, up: torch.Tensor) -> None:
        rank = down.shape[0]
        if layer.qscale is not None:  # quantized on the device, one layer at a time
            down, up = (t.to(layer.down.device, torch.float32, non_blocking=True) for t in (down, up))
            down_scale = down.abs().amax(dim=1).clamp_min(1e-12) / FP8_MAX
            up_scale = up.abs().amax(dim=0).clamp_min(1e-12) / FP8_MAX
            down = (down / down_scale[:, None]).clamp(-FP8_MAX, FP8_MAX)  # e4m3fn has no inf: past 448 is NaN
            up = (up / up_scale).clamp(-FP8_MAX, FP8_MAX)
            layer.qscale[start : start + rank] = down_scale * up_scale
        layer.down[start : start + rank].copy_(down, non_blocking=True)
        layer.up[:, start : start + rank].copy_(up, non_blocking=True)


@contextlib.contextmanager
def _allocating():
    """Buffers are made as normal tensors even inside ``inference_mode`` (a render), so that they can be
    written again outside it."""
    with torch.inference_mode(False), torch.no_grad():
        yield
