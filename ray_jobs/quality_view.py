"""A run's quality scores as lines: the weakest items per score for ``ltx-batch status``, from each item's
latest row (``runstore.latest.latest_table``), computed over columns so a run of 100,000 items takes no time."""

from __future__ import annotations

import functools
from collections import Counter

import pyarrow as pa

from quality.score_fields import BY_NAME, SCORE_NAMES
from runstore.compute import pc

WEAKEST = 5
REASONS = 5  # reasons for missing scores listed; the rest are counted on one line
NOT_SCORED = "not scored yet (ltx-batch score RUN)"


def _score(rows: pa.Table, name: str) -> pa.ChunkedArray:
    """One field of the rows' quality records (null where the row has none)."""
    return pc.struct_field(rows.column("quality"), name)


def weakest(rows: pa.Table, n: int = WEAKEST) -> dict[str, list[tuple[str, float]]]:
    """Per score, up to ``n`` (item id, value) of the ok rows that have it, the weakest first (the first in
    ``rows``' order among equals)."""
    out = {}
    rows = rows.filter(pc.equal(rows.column("status"), "ok"))
    for name in SCORE_NAMES:
        values = _score(rows, name)
        score = BY_NAME[name]
        weakness = (
            pc.abs(values) if score.weak == "far from 0" else pc.negate(values) if score.weak == "low" else values
        )
        ranked = pa.table({"w": weakness, "at": pa.array(range(rows.num_rows), pa.int64())}).filter(
            pc.is_valid(weakness)
        )
        top = pc.sort_indices(ranked, [("w", "descending"), ("at", "ascending")])[:n]
        at = ranked.column("at").take(top)
        out[name] = list(zip(rows.column("item_id").take(at).to_pylist(), values.take(at).to_pylist(), strict=True))
    return out


def weakest_seams(rows: pa.Table, n: int = WEAKEST) -> list[tuple[str, int, float]]:
    """The ``n`` largest seam scores of the ok long items, one per boundary: (item id, frame, score)."""
    seams = _score(rows, "seams")
    long = rows.filter(
        pc.and_(pc.equal(rows.column("status"), "ok"), pc.greater(pc.fill_null(pc.list_value_length(seams), 0), 0))
    )
    found = [
        (r["item_id"], window["start"], score)
        for r in long.select(["item_id", "quality"]).to_pylist()
        for window, score in zip(r["quality"]["windows"][1:], r["quality"]["seams"], strict=False)
    ]
    return sorted(found, key=lambda seam: seam[2], reverse=True)[:n]


def _value(value: float) -> str:
    return f"{value:+d}" if isinstance(value, int) else f"{value:.3g}"


def quality_lines(latest: pa.Table, n: int = WEAKEST) -> list[str]:
    """How many ok clips have scores, why the others have none, and the ``n`` weakest per score. ``latest``:
    the items' latest rows (``item_id``, ``status`` and ``quality``), in plan order."""
    ok = latest.filter(pc.equal(latest.column("status"), "ok"))
    if not ok.num_rows:
        return []
    measured = [pc.is_valid(_score(ok, name)) for name in SCORE_NAMES if name != "face_found_fraction"]
    scored = pc.fill_null(functools.reduce(pc.or_, measured), False)
    unscored = ok.filter(pc.invert(scored))
    lines = [f"quality: {ok.num_rows - unscored.num_rows} of {ok.num_rows} ok clips scored"]
    missing = Counter(pc.fill_null(_score(unscored, "reason"), NOT_SCORED).to_pylist()).most_common()
    lines += [f"  {count} without scores: {reason}" for reason, count in missing[:REASONS]]
    if len(missing) > REASONS:
        rest = sum(count for _, count in missing[REASONS:])
        lines.append(f"  {rest} without scores for {len(missing) - REASONS} other reasons")
    for name, worst in weakest(ok.filter(scored), n).items():
        if worst:
            items = ", ".join(f"{item_id} {_value(value)}" for item_id, value in worst)
            lines.append(f"  weakest {name} ({BY_NAME[name].weak} is weak): {items}")
    seams = weakest_seams(ok, n)
    if seams:
        items = ", ".join(f"{item_id} at frame {frame} {score:.3g}" for item_id, frame, score in seams)
        lines.append(f"  weakest seams (1 = no jump): {items}")
    return lines
