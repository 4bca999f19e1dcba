"""Compile the transformer's heavy sub-modules, one graph per clip shape.

Compiling whole upstream blocks recompiles for every block: each block's forward evaluates the guidance
perturbations against its integer ``idx`` in Python, so dynamo specialises on it and soon hits its
recompile limit. The attention and feed-forward modules hold nearly all the FLOPs and none of that
logic, so they are compiled instead, shared by all blocks.

Graphs are specialised to one shape (``dynamic=False``). Measured on an H200 at the reference clip, the
shape-generic graph (``dynamic=True``) makes the transformer 24% slower per clip (12.09 s vs 9.71 s) and
takes 115 s to compile against 33 s; so a new clip length pays one compile (tens of seconds, once per
worker), and the planner puts items of one shape in the same shards. A compile that fails (no C compiler
on the worker, an inductor bug) falls back to eager execution instead of failing the worker.
"""

from __future__ import annotations

import torch

HEAVY_CHILDREN = ("attn1", "attn2", "ff", "audio_attn1", "audio_attn2", "audio_ff", "audio_to_video_attn",
                  "video_to_audio_attn")  # fmt: skip


def compile_transformer(velocity_model: torch.nn.Module, dynamic: bool = False) -> int:
    """Mark every heavy child of every block for compilation (lazy: the first call of each shape compiles)."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    torch._dynamo.config.suppress_errors = True
    count = 0
    for block in velocity_model.transformer_blocks:
        for name in HEAVY_CHILDREN:
            child = getattr(block, name, None)
            if child is not None:
                child.compile(dynamic=dynamic)
                count += 1
    return count
