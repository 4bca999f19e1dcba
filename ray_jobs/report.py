"""A static HTML report of a run: ``python -m ray_jobs.report RUN`` writes ``RUN/report/index.html``.

One card per planned item, with a poster frame, settings, timings, quality scores and, for failures, the
error and the command that re-renders it. The page sorts and filters cards by status, tag and score; in a retry
run (``ltx-batch retry-weak``) each item's candidates stand side by side, the best one marked. The drafts of a run
can be picked on their cards: the page writes the ``ltx-batch promote`` command for the picked ones.

The page is self-contained (no network, no framework: it is opened as a file) and stays quick for a run of
100,000 items: the cards are data, a JSON blob in the page, whose script lays out ``PAGE`` of them at a time
(a page of cards in the browser, not 100,000 at once) and sorts and filters over all of them. What many cards
repeat (a campaign's settings, prompts and tags) is in the data once (``Shared``). The cards' text is formatted
here; the script only places it, as text nodes and attributes, never as markup. Thumbnails are small
lazy-loaded JPEG files beside the page (``ray_jobs.posters``).

The page is the Jinja2 template ``templates/report.html.j2`` with autoescape on; its stylesheet and script
are the package files ``templates/report.css`` and ``templates/report.js``, inlined into it.
"""

from __future__ import annotations

import html
import json
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from quality.score_fields import SCORES
from ray_jobs.posters import posters
from ray_jobs.summary import SUMMARY_COLUMNS, RunSummary, invalid_ids, item_status, summarize
from runstore.best_candidates import retry_info
from runstore.latest import latest_table
from runstore.plan import PlannedItem
from runstore.results import read_results
from runstore.run_folder import RunFolder
from storage.fs import is_uri, local_or_uri

PAGE = 100  # cards (or a retry run's groups of candidates) the page lays out at a time
WEAK_SEAM = 2.0  # a seam score above this is drawn as a visible jump on the item's timeline
GUIDANCE = (
    ("steps", "num_inference_steps"),
    ("cfg", "video_cfg_scale"),
    ("stg", "video_stg_scale"),
    ("rescale", "video_rescale_scale"),
    ("modality", "video_modality_scale"),
    ("skip step", "video_skip_step"),
    ("stg blocks", "video_stg_blocks"),
    ("distilled LoRA", "distilled_lora_strength"),
    ("frozen audio sigma", "frozen_audio_sigma"),
)
DRAFT = (("steps", "num_inference_steps"), ("distilled LoRA", "distilled_lora_strength"))  # no guidance
# The results table's columns the cards show, besides the summary's.
CARD_COLUMNS = (
    *SUMMARY_COLUMNS,
    *("best", "prompt", "prompt_enhanced", "pipeline", "frame_rate", "num_frames", "width", "height", "seed"),
    *("images", "loras", "timings", "tags", "retry_of", "windows", *(key for _, key in GUIDANCE)),
)
# The settings that make a card's look (``_look``): items rendered alike share one.
LOOK = ("pipeline", "frame_rate", "num_frames", "width", "height", "images", "loras", *(key for _, key in GUIDANCE))


@dataclass(frozen=True)
class Card:
    """Everything one item's card shows; ``values`` are the resolved settings (plan, then result row)."""

    item_id: str
    status: str
    values: dict
    tags: dict[str, str]
    poster: tuple[int, int] | None = None  # (width, height) of the poster JPEG when there is one


def _tag_token(key: str, value: str) -> str:
    """One space-free token per tag, so the filter script can match a card with a plain string compare."""
    return f"{quote(key, safe='')}={quote(value, safe='')}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "–" if value is None else str(value)


def _loras(loras: list[dict]) -> str:
    """``brand.safetensors 0.8, anna.safetensors 1`` (file names; the full paths are in the results table)."""
    return ", ".join(f"{lora['path'].rsplit('/', 1)[-1]} {_fmt(lora['strength'])}" for lora in loras)


def _images(images: list[dict]) -> str:
    """``presenter.png @0 ×1, pose.png @48 ×0.6``: each conditioning image, its frame and strength."""
    return ", ".join(f"{Path(i['path']).name} @{i['frame']} ×{_fmt(i['strength'])}" for i in images)


def _seconds(row: dict) -> float | None:
    start, end = row.get("started_at"), row.get("finished_at")
    return (end - start).total_seconds() if start and end else None


class Shared:
    """Values that many cards repeat, kept once in the page's data: a card holds their index."""

    def __init__(self) -> None:
        self.values: list = []
        self._index: dict[tuple[str, Hashable], int] = {}

    def ref(self, kind: str, key: Hashable, make: Callable[[], object]) -> int:
        """The index of the value of ``kind`` known by ``key``, made (once) by ``make``."""
        at = self._index.get((kind, key))
        if at is None:
            at = self._index[(kind, key)] = len(self.values)
            self.values.append(make())
        return at


def invalid_card(item_id: str, row: dict | None) -> Card:
    """The card of an item set aside as invalid (``--skip-invalid``): its row holds what of it parsed."""
    values = row or {}
    return Card(item_id, item_status(row), values, dict(values.get("tags") or []))


def _look(v: dict) -> dict:
    """What a card shows of its settings: its facts (the seed's value, ``None`` here, is the card's own), its
    guidance line and its pipeline."""
    fps, frames = v.get("frame_rate"), v.get("num_frames")
    clip = f"{frames / fps:.2f} s" if fps and frames else "–"
    draft = v.get("pipeline") == "distilled"
    return {
        "facts": [
            ("duration", f"{clip} ({_fmt(frames)} frames @ {_fmt(fps)} fps)"),
            ("size", f"{_fmt(v.get('width'))}×{_fmt(v.get('height'))}"),
            ("seed", None),
            *([("images", _images(v["images"]))] if v.get("images") else []),
            *([("LoRAs", _loras(v["loras"]))] if v.get("loras") else []),
        ],
        "guidance": " · ".join(
            (["draft (distilled), no guidance"] if draft else [])
            + [f"{name} {_fmt(v.get(key))}" for name, key in (DRAFT if draft else GUIDANCE)]
        ),
        "pipeline": v.get("pipeline") or "two-stage",
    }


def card_data(card: Card, shared: Shared) -> dict:
    """One card as the page's script shows it: its own text, and indices into ``shared`` for the rest. Keys
    whose value would be empty are left out."""
    v = card.values
    prompt = v.get("prompt") or ""
    data: dict = {
        "id": card.item_id,
        "status": card.status,
        "look": shared.ref("look", repr([v.get(k) for k in LOOK]), lambda: _look(v)),  # repr: lists and dicts too
        "seed": _fmt(v.get("seed")),
        "prompt": shared.ref("prompt", prompt, lambda: prompt),
    }
    uid = quote(card.item_id, safe="")
    tags = sorted(card.tags.items())
    optional = {
        "uid": uid if uid != card.item_id else None,
        "tags": shared.ref(
            "tags", tuple(tags), lambda: {"tags": tags, "tokens": " ".join(_tag_token(*t) for t in tags)}
        )
        if tags
        else None,
        "poster": card.poster,
        "enhanced": v.get("prompt_enhanced"),
        "timings": [(k, f"{t:.2f}s") for k, t in dict(v.get("timings") or []).items()],
        "total": f"{total:.1f}s" if (total := _seconds(v)) else None,
        "error": f"{v.get('error_type') or 'error'}: {v.get('error_message') or ''}"
        if card.status == "failed"
        else None,
        "promotable": v.get("pipeline") == "distilled" and card.status == "ok",
        "best": bool(v.get("best")),
        "timeline": _timeline(v.get("windows"), v.get("quality")),
        **_quality_data(v.get("quality")),
    }
    return data | {k: value for k, value in optional.items() if value or (k == "enhanced" and value is not None)}


def _quality_data(quality: dict | None) -> dict:
    """A card's scores in ``SCORES`` order (``q``, None where not measured; the script formats them as ``_fmt``
    does) and why any is missing; nothing for a clip without a quality record."""
    if not quality:
        return {}
    return {"q": [quality.get(s.name) for s in SCORES], "reason": quality.get("reason")}


def _timeline(rendered: list[dict] | None, quality: dict | None) -> dict | None:
    """A long item's windows as segments of a bar (left and width in % of its frames): each with its span in
    seconds and frames, the worker that rendered it and its scores, and its seams as marks at their boundaries;
    ``weak`` marks a seam above ``WEAK_SEAM``. From the windows as rendered (the results' ``windows``) and as
    scored (the quality record's), whichever the row has; None for one window."""
    scored = (quality or {}).get("windows") or []
    spans = [(w["start_frame"], w["num_frames"]) for w in rendered or []] or [(w["start"], w["frames"]) for w in scored]
    if len(spans) < 2:
        return None
    total = sum(frames for _, frames in spans)
    segments = []
    for k, (start, frames) in enumerate(spans):
        made = rendered[k] if rendered else None
        label = f"frames {start}–{start + frames - 1}"
        if made:
            label = f"{made['start_s']:.2f}–{made['end_s']:.2f} s, {label}"
            if k and not made["boundary_in_pause"]:
                label += ", starts inside speech"
        score = scored[k] if k < len(scored) else None
        segments.append(
            {
                "left": round(100 * start / total, 3),
                "width": round(100 * frames / total, 3),
                "label": label,
                "by": f"rendered by {made['rendered_by']} in {made['seconds']:.1f}s" if made else None,
                "scores": f"sync {_fmt(score['lipsync_confidence'])} ({_signed(score['lipsync_offset_frames'])}) · "
                f"id {_fmt(score['identity_similarity'])} · colour {_fmt(score['colour_shift'])}"
                if score
                else None,
            }
        )
    seams = [
        {"left": segments[k + 1]["left"], "frame": spans[k + 1][0], "score": _fmt(score), "weak": score > WEAK_SEAM}
        for k, score in enumerate((quality or {}).get("seams") or [])
        if k + 1 < len(spans)
    ]
    return {"windows": segments, "seams": seams}


def _signed(value: int | None) -> str:
    return "–" if value is None else f"{value:+d}"


def _units(cards: list[Card], retry: dict | None) -> list[int | dict]:
    """What the page lays out, in plan order: a card (its index in ``cards``), or a retry run's candidates of one
    item together (their indices) with the original's score."""
    out: list[int | dict] = []
    by_origin: dict[str, dict] = {}
    for index, card in enumerate(cards):
        origin = card.values.get("retry_of")
        if origin is None:
            out.append(index)
            continue
        if origin not in by_origin:
            original = (retry or {}).get("originals", {}).get(origin, {})
            by = (retry or {}).get("by")
            note = f"original {by} {_fmt(original.get(by))}" if by else ""
            by_origin[origin] = {"origin": origin, "uid": quote(origin, safe=""), "note": note, "cards": []}
            out.append(by_origin[origin])
        by_origin[origin]["cards"].append(index)
    return out


def _tag_values(cards: list[Card]) -> list[tuple[str, list[tuple[str, str, int]]]]:
    """Each tag key with its (filter token, value, number of cards) options, sorted."""
    values: dict[str, Counter] = {}
    for card in cards:
        for k, val in card.tags.items():
            values.setdefault(k, Counter())[val] += 1
    return [(k, [(_tag_token(k, val), val, n) for val, n in sorted(values[k].items())]) for k in sorted(values)]


def _escape(value: object) -> Markup:
    """Jinja's ``finalize``: escape every value with the standard library, which writes a quote as ``&quot;``
    as this report always has (markupsafe writes ``&#34;``); ``Markup`` (the page's data) passes unchanged."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ray_jobs", "templates"),
    autoescape=True,
    finalize=_escape,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render_page(
    info: dict,
    cards: list[Card],
    summary: RunSummary,
    run_command: str,
    promote_command: str = "",
    retry: dict | None = None,
) -> str:
    """The whole page as one string; separated from file access so it can be tried on synthetic cards.
    ``retry``: a retry run's ``retry.json``."""
    figures = [
        ("total", "items", summary.total),
        *((status, status, count) for status, count in summary.counts.items()),
        ("seconds", "render seconds", f"{summary.worker_seconds:,.1f}"),
        ("rate", "clips / hour", f"{summary.clips_per_hour or 0.0:,.1f}"),
    ]
    shared = Shared()
    data = {
        "page": PAGE,
        "runCommand": run_command,
        "scores": [(s.name, s.meaning, s.weak) for s in SCORES],
        "cards": [card_data(c, shared) for c in cards],
        "units": _units(cards, retry),
    }
    data["shared"] = shared.values
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return TEMPLATES.get_template("report.html.j2").render(
        info=info,
        data=Markup(text.replace("<", "\\u003c")),  # no "</script>" or "<!--" can end the data early
        promotable=any(c.get("promotable") for c in data["cards"]),
        scores=SCORES,
        figures=figures,
        total=summary.total,
        counts=summary.counts,
        tag_values=_tag_values(cards),
        promote_command=promote_command,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def _card(
    item_id: str, row: dict | None, planned: PlannedItem | None, tags: dict, poster: tuple[int, int] | None
) -> Card:
    """A planned item's card from its latest row; its plan's settings where it has none (``planned``: given
    then), and its conditioning images from the plan where its row predates their column."""
    if planned is None:
        return Card(item_id, item_status(row), row or {}, tags, poster)
    values = {**planned.item.values, **(row or {})}
    if not values.get("images"):
        values["images"] = planned.item.resolved_images
    return Card(item_id, item_status(row), values, tags, poster)


def build_report(run_uri: str) -> Path:
    """Write ``RUN/report/index.html`` and its posters; return the page's path (inside the bucket for a URI)."""
    run = RunFolder(run_uri)
    info, plan, invalid = run.run_info(), run.plan_table(["id", "tags"]), invalid_ids(run)
    ids = plan.column("id").to_pylist()
    attempts = read_results(run.results_uri, CARD_COLUMNS)
    rows = {r["item_id"]: r for r in latest_table(ids, attempts, invalid).to_pylist()}
    lacking = [i for i in ids if i not in rows or rows[i]["images"] is None]  # the plan says what they show
    planned = {p.id: p for p in run.plan(lacking)} if lacking else {}
    sizes = posters(run, [i for i in ids if i in rows and rows[i]["status"] == "ok"])
    tags = [dict(pairs or []) for pairs in plan.column("tags").to_pylist()]
    cards = [invalid_card(i, rows.get(i)) for i in invalid]
    cards += [_card(i, rows.get(i), planned.get(i), t, sizes.get(i)) for i, t in zip(ids, tags, strict=True)]
    folder = local_or_uri(run_uri)
    command = f"python -m ray_jobs.render --resume {shlex.quote(folder)}"
    promote = f"ltx-batch promote {shlex.quote(folder)} --out {shlex.quote(folder.rstrip('/') + '-final')}"
    summary = summarize(ids, attempts, invalid)
    page = render_page(info, cards, summary, command, promote, retry_info(run))
    run.write_file(run.report_page_uri, page.encode())
    return Path(run.fs_path(run.report_page_uri))


def report_written(run_uri: str) -> str:
    """Build the report; where it is, as the user opens it: a URI for a run on object storage, else its path."""
    path = build_report(run_uri)
    return RunFolder(run_uri).report_page_uri if is_uri(run_uri) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m ray_jobs.report RUN   (writes RUN/report/index.html)", file=sys.stderr)
        return 2
    print(report_written(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
