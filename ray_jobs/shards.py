"""Shards: small groups of items that share a prompt, images, a frame size and a LoRA set, so the engine's
caches hit.

Items are grouped by what the engine can reuse (the encoded prompt pair, the conditioning images, the frame size
and the set of user LoRAs staged in the transformer's branches, which its compiled graphs are specialised to:
strengths may differ within a shard, and lengths too, since the graphs serve every length), each group is cut
into shards of at most ``shard_size`` items, and the largest groups come first. A shard stays small: a worker
lost mid-shard costs at most the item it was rendering. Grouping is for the caches only: a worker overlaps each
item with the next across shards too (``ray_jobs.device_turns``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from runstore.enhanced import enhancement_key
from runstore.plan import PlannedItem


@dataclass(frozen=True)
class Shard:
    shard_id: int
    items: tuple[PlannedItem, ...]
    attempt: int = 0

    def retry(self, items: list[PlannedItem]) -> Shard:
        return Shard(self.shard_id, tuple(items), self.attempt + 1)

    def enhancements(self, known: dict) -> set:
        """The enhancement keys its worker would generate: asked for, carried by no item, not in ``known``."""
        keys = {enhancement_key(p.item) for p in self.items if p.prompt_enhanced is None}
        return {key for key in keys if key is not None and key not in known}

    def with_enhanced(self, known: dict) -> Shard:
        """The shard whose items carry the ``known`` enhanced prompt of their key."""
        items = tuple(
            replace(p, prompt_enhanced=known[key]) if (key := enhancement_key(p.item)) in known else p
            for p in self.items
        )
        return replace(self, items=items)


def cache_key(p: PlannedItem) -> tuple:
    """What the engine reuses: the prompt pair, the images, the graphs' frame size and LoRA set."""
    i = p.item
    images = tuple(tuple(image.values()) for image in i.resolved_images)
    loras = tuple(sorted({lora.path for lora in i.loras}))
    return (i.prompt, i.negative_prompt, images, i.height, i.width, loras)


def make_shards(planned: list[PlannedItem], shard_size: int, workers: int = 1) -> list[Shard]:
    """Shards of at most ``shard_size`` items, smaller when needed so every worker gets one."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    shard_size = max(1, min(shard_size, -(-len(planned) // max(1, workers))))
    groups: dict[tuple, list[PlannedItem]] = defaultdict(list)
    for p in planned:
        groups[cache_key(p)].append(p)
    ordered = sorted(groups.values(), key=len, reverse=True)
    chunks = [group[i : i + shard_size] for group in ordered for i in range(0, len(group), shard_size)]
    return [Shard(shard_id, tuple(chunk)) for shard_id, chunk in enumerate(chunks)]
