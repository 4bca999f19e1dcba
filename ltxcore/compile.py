"""``torch.compile`` for one callable, with an eager fallback per input shape.

A compile that fails (no C compiler on a worker, an inductor bug) must not fail the worker, nor silently
turn every later call into an eager one: the failure is logged once for the shape that hit it, that shape
runs eagerly from then on, and every other shape stays compiled. Graphs are specialised to one shape
(``dynamic=False``): measured on an H200, a shape-generic graph made the transformer 24% slower per clip
and compiled 3.5x longer (BENCHMARKS.md), so every length pays one compile per worker. Clips and windows render
at a few lengths (``ltxcore/shapes.py``), which a worker compiles before its first item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

import torch
import torch._dynamo.exc

log = logging.getLogger(__name__)

COMPILE_ERRORS: tuple[type[Exception], ...] = (torch._dynamo.exc.TorchDynamoException,)
if hasattr(torch, "_inductor"):
    from torch._inductor.exc import InductorError

    COMPILE_ERRORS += (InductorError,)


class CompiledWithFallback:
    """Calls ``fn`` compiled; a shape (``key(*args)``) whose compile failed is run by ``fn`` itself."""

    def __init__(self, fn: Callable, key: Callable[..., Hashable], backend: str | Callable = "inductor"):
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        self.fn, self.key = fn, key
        self.compiled = torch.compile(fn, dynamic=False, backend=backend)
        self.eager_keys: set[Hashable] = set()

    def __call__(self, *args):
        key = self.key(*args)
        if key in self.eager_keys:
            return self.fn(*args)
        try:
            return self.compiled(*args)
        except COMPILE_ERRORS as e:
            self.eager_keys.add(key)
            log.warning("torch.compile failed for %s; that shape runs eagerly from now on: %s", key, e)
            return self.fn(*args)
