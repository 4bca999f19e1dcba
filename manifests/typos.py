"""Whether a name a user wrote misspells a known one: a column of their own is kept (as a tag), a misspelt
field is an error with a suggestion. Pure: the item checks (``manifests.item_checks.typo_of``) give the names."""

from __future__ import annotations

import difflib
import re

TYPO_CUTOFF = 0.8  # difflib's ratio: sed/seed 0.86, promt/prompt 0.91, segment/seed 0.55, city/id 0.33


def misspelt(name: str, targets: dict[str, str], known: set[str]) -> str | None:
    """The name in ``known`` that ``name`` misspells, or None. ``targets`` maps what may be misspelt to the
    name it stands for. The rule: a typo is

    - a ``known`` name written in other case (``Prompt``, ``ID``), or
    - a name whose ``difflib`` ratio to a target is at least ``TYPO_CUTOFF``, 0.8 (``sed``, ``promt``,
      ``video_cfg_sacle``, ``cfg_scale``), or that is one edit from one (a letter added, dropped, changed, or
      two neighbours swapped: ``sede``), unless that target is one ``_``/``-``-separated word of the name:
      ``prompt_id``, ``image_url`` and ``seed_group`` are columns of their own, not misspellings.

    A column that trips it by chance (``speed`` is close to ``seed``) is named with the suggestion: rename
    it, or write it under ``tags``."""
    lower = name.lower()
    if lower in known:
        return lower
    match = difflib.get_close_matches(lower, targets, n=1, cutoff=TYPO_CUTOFF)
    match = match or [target for target in targets if one_edit_apart(lower, target)]
    if not match or match[0] in re.split(r"[_\-]", lower):
        return None
    return targets[match[0]]


def one_edit_apart(a: str, b: str) -> bool:
    """One letter added, dropped, changed, or two neighbours swapped (``sede``/``seed``, whose ratio is 0.75)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
