"""Retry candidates: a new run's items made from an old run's items (``ltx-batch retry-weak``).

Candidate ``n`` of item ``x`` is ``x-retry<n>``, with ``retry_of: x`` and ``candidate: n``, the settings of
``x`` changed by the overrides, and (with ``seeds``) a new seed derived from the item's id, its seed and
``n``: the same command plans the same candidates.
"""

from __future__ import annotations

import hashlib

from runstore.plan import SEED_SPACE, PlannedItem


class RetryError(ValueError):
    """The retry cannot be planned; the message says what to change."""


def candidate_seed(item_id: str, seed: int, n: int) -> int:
    digest = hashlib.sha256(f"retry:{item_id}:{seed}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE


def candidates(selected: list[PlannedItem], seeds: int, overrides: dict) -> list[dict]:
    """Manifest entries: ``seeds`` candidates per item with new seeds, or one with the item's seed when only
    ``overrides`` change. Checking the entries is left to manifest validation (it names item and field)."""
    if seeds < 0:
        raise RetryError(f"--seeds must be 0 or more, got {seeds}.")
    if not seeds and not overrides:
        raise RetryError("nothing would change: give --seeds K (new seeds) and/or --set FIELD=VALUE (new settings).")
    entries = []
    for p in selected:
        values = {k: v for k, v in p.item.values.items() if v is not None}
        origin = p.item.retry_of or p.id  # a retry of a retry still names the first item
        assert p.item.seed is not None, "planning sets every seed"
        for n in range(1, max(seeds, 1) + 1):
            seed = candidate_seed(origin, p.item.seed, n) if seeds else p.item.seed
            entry = {**values, **overrides, "id": f"{p.id}-retry{n}", "seed": seed}
            entries.append({**entry, "retry_of": origin, "candidate": n})
    return entries
