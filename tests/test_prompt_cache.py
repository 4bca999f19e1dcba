"""The engine's prompt cache: least recently used pairs leave first, hits and misses are counted."""

from __future__ import annotations

import torch

from ltxcore.text import PromptCache, PromptEncoding


def _pair(n: int) -> tuple[PromptEncoding, PromptEncoding]:
    encoding = PromptEncoding(video=torch.full((1, 4, 8), float(n)), audio=torch.full((1, 4, 2), float(n)))
    return encoding, encoding


def test_least_recently_used_pair_is_evicted_first():
    cache = PromptCache(capacity=2)
    cache.put(("a", ""), _pair(1))
    cache.put(("b", ""), _pair(2))
    assert cache.get(("a", "")) is not None  # "a" is now the most recently used
    cache.put(("c", ""), _pair(3))
    assert ("b", "") not in cache and ("a", "") in cache and ("c", "") in cache
    assert float(cache.get(("a", ""))[0].video[0, 0, 0]) == 1.0
    assert cache.get(("b", "")) is None
    assert (cache.hits, cache.misses) == (2, 1)


def test_negative_prompt_is_part_of_the_key_and_put_refreshes_an_entry():
    cache = PromptCache(capacity=2)
    cache.put(("a", "blurry"), _pair(1))
    cache.put(("a", ""), _pair(2))
    cache.put(("a", "blurry"), _pair(4))  # re-encoded: replaces the value and counts as most recent
    cache.put(("b", ""), _pair(3))
    assert ("a", "") not in cache
    assert float(cache.get(("a", "blurry"))[1].audio[0, 0, 0]) == 4.0


def test_capacity_raised_at_run_time_keeps_more():
    cache = PromptCache(capacity=1)
    cache.put(("a", ""), _pair(1))
    cache.capacity = 3  # Engine.warm_prompts raises it so a whole shard's pairs stay cached
    for n, key in enumerate(("b", "c"), start=2):
        cache.put((key, ""), _pair(n))
    assert all((key, "") in cache for key in "abc")
    cache.put(("d", ""), _pair(4))
    assert ("a", "") not in cache and all((key, "") in cache for key in "bcd")
