"""Weights kept in pinned host memory and streamed to the GPU module by module while they run.

The text path (Gemma-3 12B, ~24 GB, plus the feature extractor and the text connectors) is needed only
to encode prompts, once per shard. Keeping it resident beside the FP8 transformer would push a worker
far past the 32 GB cards FP8 is meant for; streaming it costs one host-to-device copy of its weights per
shard and adds only one module's weights (at most the embedding table) to the peak.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StreamedModule:
    """``module`` lives on the host; inside :meth:`on`, each of its sub-modules that owns weights visits
    ``device`` only for the duration of its own forward."""

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module, self.device = module, device
        self.units = [m for m in module.modules() if _own_tensors(m)]
        self.host = {id(t): _pinned(t) for unit in self.units for t in _own_tensors(unit)}

    @contextmanager
    def on(self) -> Iterator[torch.nn.Module]:
        """The module, ready to be called with inputs on the device."""
        hooks = []
        for unit in self.units:
            hooks.append(unit.register_forward_pre_hook(lambda m, _args: self._place(m, self.device)))
            hooks.append(unit.register_forward_hook(lambda m, _args, _out: self._place(m, None)))
        try:
            yield self.module
        finally:
            for hook in hooks:
                hook.remove()
            for unit in self.units:
                self._place(unit, None)

    @contextmanager
    def resident(self) -> Iterator[torch.nn.Module]:
        """The module with all its weights on ``device`` until the block ends (one copy of each)."""
        try:
            for unit in self.units:
                self._place(unit, self.device)
            yield self.module
        finally:
            for unit in self.units:
                self._place(unit, None)

    def _place(self, unit: torch.nn.Module, device: torch.device | None) -> None:
        """Point the unit's own tensors at device copies of their host masters (``None``: at the masters)."""
        for t in _own_tensors(unit):
            master = self.host[id(t)]
            t.data = master if device is None else master.to(device, non_blocking=True)


def _own_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(recurse=False), *module.buffers(recurse=False)]


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """The host master of ``t``, page-locked so that copies to the GPU run at full link speed."""
    host = t.data.cpu()
    if torch.cuda.is_available():
        host = host.pin_memory()
    t.data = host
    return host
