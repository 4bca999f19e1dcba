"""Enhanced prompts across a run: what one depends on, and the ones earlier attempts recorded.

An item with ``enhance_prompt`` is enhanced once per (prompt, first image, seed) in a run; the text goes into
its result rows (``prompt_enhanced``). A resumed run reads the texts back instead of generating them again,
from rows whose item still has the fingerprint it had then (same inputs, settings and model), an ok row's
text before a failed one's, the latest first.
"""

from __future__ import annotations

import pyarrow as pa

from ltxcore.request import EnhanceKey
from manifests.item import Item
from runstore.plan import PlannedItem


def enhancement_key(item: Item) -> EnhanceKey | None:
    """The key of the item's request (``RenderRequest.enhance_key``), or None when it does not ask for
    enhancement."""
    if not item.enhance_prompt or item.seed is None:  # planning sets every seed
        return None
    return item.to_request().enhance_key


def recorded_enhancements(planned: list[PlannedItem], results: pa.Table) -> dict[EnhanceKey, str]:
    """The enhanced prompts earlier attempts of this plan's items recorded, by key."""
    current = {p.id: p for p in planned if p.item.enhance_prompt}
    if not current or results.num_rows == 0:
        return {}
    columns = ["item_id", "fingerprint", "status", "finished_at", "prompt_enhanced"]
    rows = [
        r
        for r in results.select(columns).to_pylist()
        if r["prompt_enhanced"] is not None and r["item_id"] in current
        if current[r["item_id"]].fingerprint == r["fingerprint"]
    ]
    rows.sort(key=lambda r: (r["status"] == "ok", r["finished_at"] is not None, r["finished_at"] or 0))
    keys = [(enhancement_key(current[r["item_id"]].item), r["prompt_enhanced"]) for r in rows]
    return {key: text for key, text in keys if key is not None}  # the last wins
