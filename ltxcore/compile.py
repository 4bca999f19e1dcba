"""``torch.compile`` for one callable, with an eager fallback per input shape.

A compile that fails (no C compiler on a worker, an inductor bug) must not fail the worker, nor silently
turn every later call into an eager one: the failure is logged once for the shape that hit it, that shape
runs eagerly from then on, and every other shape stays compiled.

Shapes. Without ``mark_dynamic`` graphs are specialised to one shape (``dynamic=False``), so every length a
worker meets pays a compile. With
``mark_dynamic`` (a function that marks the axes of a call's tensors that vary between calls, e.g. the token
axes), those axes alone are symbolic and every other size stays static: one graph serves every length. Measured
on an H200, making *every* size symbolic (``dynamic=True``) cost 24% per clip (BENCHMARKS.md), so nothing is
symbolic that is not marked (no automatic dynamic shapes).
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

    def __init__(
        self,
        fn: Callable,
        key: Callable[..., Hashable],
        backend: str | Callable = "inductor",
        mark_dynamic: Callable[..., None] | None = None,
    ):
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        if mark_dynamic is not None:
            torch._dynamo.config.automatic_dynamic_shapes = False  # symbolic only where marked
        self.fn, self.key, self.mark_dynamic = fn, key, mark_dynamic
        self.compiled = torch.compile(fn, dynamic=None if mark_dynamic else False, backend=backend)
        self.eager_keys: set[Hashable] = set()

    def __call__(self, *args):
        key = self.key(*args)
        if key in self.eager_keys:
            return self.fn(*args)
        if self.mark_dynamic is not None:
            self.mark_dynamic(*args)
        try:
            return self.compiled(*args)
        except COMPILE_ERRORS as e:
            self.eager_keys.add(key)
            log.warning("torch.compile failed for %s; that shape runs eagerly from now on: %s", key, e)
            return self.fn(*args)
