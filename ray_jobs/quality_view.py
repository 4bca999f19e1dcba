"""A run's quality scores as lines: the weakest items per score for ``ltx-batch status``, from each item's
latest row (``runstore.latest``)."""

from __future__ import annotations

from collections import Counter

from quality.score_fields import BY_NAME, SCORE_NAMES

WEAKEST = 5


def weakest(rows: list[dict], n: int = WEAKEST) -> dict[str, list[tuple[str, float]]]:
    """Per score, up to ``n`` (item id, value) of the ok items that have it, the weakest first."""
    out = {}
    for name in SCORE_NAMES:
        scored = [(r["item_id"], r[name]) for r in rows if r["status"] == "ok" and r[name] is not None]
        out[name] = sorted(scored, key=lambda pair: BY_NAME[name].weakness(pair[1]), reverse=True)[:n]
    return out


def weakest_seams(rows: list[dict], n: int = WEAKEST) -> list[tuple[str, int, float]]:
    """The ``n`` largest seam scores of the run's ok long items, one per boundary: (item id, frame, score)."""
    seams = [
        (r["item_id"], window["start"], score)
        for r in rows
        if r["status"] == "ok" and r.get("quality_seams")
        for window, score in zip(r["quality_windows"][1:], r["quality_seams"], strict=False)
    ]
    return sorted(seams, key=lambda seam: seam[2], reverse=True)[:n]


def _value(value: float) -> str:
    return f"{value:+d}" if isinstance(value, int) else f"{value:.3g}"


def quality_lines(rows: list[dict], n: int = WEAKEST) -> list[str]:
    """How many ok clips have scores, why the others have none, and the ``n`` weakest per score."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    unscored = [r for r in ok if all(r[name] is None for name in SCORE_NAMES if name != "face_found_fraction")]
    lines = [f"quality: {len(ok) - len(unscored)} of {len(ok)} ok clips scored"]
    missing = Counter(r["quality_reason"] or "not scored yet (ltx-batch score RUN)" for r in unscored)
    lines += [f"  {count} without scores: {reason}" for reason, count in missing.most_common()]
    unscored_ids = {r["item_id"] for r in unscored}
    for name, worst in weakest([r for r in ok if r["item_id"] not in unscored_ids], n).items():
        if worst:
            items = ", ".join(f"{item_id} {_value(value)}" for item_id, value in worst)
            lines.append(f"  weakest {name} ({BY_NAME[name].weak} is weak): {items}")
    seams = weakest_seams(ok, n)
    if seams:
        items = ", ".join(f"{item_id} at frame {frame} {score:.3g}" for item_id, frame, score in seams)
        lines.append(f"  weakest seams (1 = no jump): {items}")
    return lines
