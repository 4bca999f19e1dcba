"""A manifest's own columns (city, segment, ...): every key or column that is no item field and no misspelling
of one (``manifests.item_checks.typo_of``) is kept as one of the item's tags, a string."""

from __future__ import annotations

import json
import math
from datetime import date, time

from manifests.item import GUIDER_SECTION, KINDS
from manifests.item_checks import typo_of


def extra_columns(entry: dict) -> list[str]:
    """The keys of an entry (or of the defaults) as written, before ``flatten``, that are no item field and
    no typo of one (``typo_of``): the user's own columns (city, segment), kept as tags."""
    return [k for k in entry if k not in KINDS and k != GUIDER_SECTION and typo_of(str(k)) is None]


def tag_value(value: object) -> str | None:
    """An extra column's value as a tag: a string (true/false, numbers as written, dates in ISO form, lists
    and mappings as JSON); None for a missing or empty value, which is left out."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def with_extras_as_tags(entry: dict, defaults: dict, default_extras: dict[str, str]) -> dict:
    """``entry`` (as written) with its extra columns moved into its tags: the defaults' extra columns, then
    the entry's, then the explicit tags (the entry's own, else the defaults'), which win on a clash. An entry
    with no extra columns (and defaults with none) is returned as it is; explicit tags that are no mapping
    are left for validation to report."""
    names = extra_columns(entry)
    if not names and not default_extras:
        return entry
    explicit = entry["tags"] if "tags" in entry else defaults.get("tags") or {}
    if not isinstance(explicit, dict):
        return {k: v for k, v in entry.items() if k not in names}
    own = {str(k): text for k in names if (text := tag_value(entry[k])) is not None}
    out = {k: v for k, v in entry.items() if k not in names}
    out["tags"] = {**default_extras, **own, **explicit}
    return out
