"""A static HTML report of a run: ``python -m ray_jobs.report RUN`` writes ``RUN/report/index.html``.

One card per planned item, with a poster frame, settings, timings, quality scores and, for failures, the
error and the command that re-renders it. The page sorts and filters cards by score; in a retry run
(``ltx-batch retry-weak``) each item's candidates stand side by side, the best one marked. The drafts of a run
can be picked on their cards: the page writes the ``ltx-batch promote`` command for the picked ones. The page
is self-contained (no network, no framework) and stays usable for thousands of items: thumbnails are small
lazy-loaded JPEG files beside the page, and every card's filter data lives in plain ``data-`` attributes
rather than in a big inline JSON blob.

The page is the Jinja2 template ``templates/report.html.j2`` with autoescape on; its stylesheet and script
are the package files ``templates/report.css`` and ``templates/report.js``, inlined into it.
"""

from __future__ import annotations

import html
import io
import shlex
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import quote

import av
import av.error
import jinja2
import pyarrow.fs as pafs
from av.container import InputContainer
from markupsafe import Markup
from PIL import Image, UnidentifiedImageError

from quality.score_fields import SCORES
from ray_jobs.summary import RunSummary, invalid_ids, item_status, summarize
from runstore.best_candidates import retry_info
from runstore.latest import latest_by_item
from runstore.plan import PlannedItem
from runstore.results import read_results
from runstore.run_folder import RunFolder
from storage.fs import filesystem, is_uri, join, local_or_uri, write_atomically

POSTER_WIDTH = 256
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


def extract_poster(fs: pafs.FileSystem, video_path: str) -> tuple[bytes, tuple[int, int]]:
    """The middle frame as a small JPEG: seek to the nearest keyframe before it, decode up to it."""
    with fs.open_input_file(video_path) as f, cast(InputContainer, av.open(f, mode="r")) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        middle = (stream.duration or 0) // 2
        if stream.frames and stream.average_rate and stream.time_base:  # exact: the frame at index frames // 2
            middle = int((stream.frames // 2) / stream.average_rate / stream.time_base)
        target = start + middle
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frame = None
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts >= target:
                break
        if frame is None:
            raise ValueError(f"{video_path}: no video frame")
        image = frame.to_image()
    if image.width > POSTER_WIDTH:
        image = image.resize((POSTER_WIDTH, max(1, round(image.height * POSTER_WIDTH / image.width))))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue(), image.size


def _poster(fs: pafs.FileSystem, video_path: str, poster_path: str) -> tuple[int, int] | None:
    """Write (or reuse, if newer than the video) one poster; None when the video cannot be read."""
    try:
        video, poster = fs.get_file_info([video_path, poster_path])
        if video.type != pafs.FileType.File:
            return None
        if poster.type == pafs.FileType.File and poster.mtime_ns and poster.mtime_ns >= (video.mtime_ns or 0):
            with fs.open_input_file(poster_path) as f, Image.open(f) as image:  # reads only the JPEG header
                return image.size
        data, size = extract_poster(fs, video_path)
        write_atomically(fs, poster_path, lambda stream: stream.write(data))
        return size
    except (av.error.FFmpegError, UnidentifiedImageError, OSError, ValueError, IndexError):
        return None


def collect_cards(
    run: RunFolder, planned: list[PlannedItem], latest: dict[str, dict], fs: pafs.FileSystem, report_root: str
) -> list[Card]:
    """Cards in plan order from each item's latest attempt (``latest_by_item``); posters written on the way."""
    fs.create_dir(f"{report_root}/posters", recursive=True)

    def card(p: PlannedItem) -> Card:
        row = latest.get(p.id)
        status = item_status(row)
        values = {**p.item.values, **(row or {})}
        values["images"] = values.get("images") or p.item.resolved_images  # both forms, and rows from before
        video = filesystem(run.video_uri(p.id))[1]  # video_uri refuses ids that could leave the folder
        size = _poster(fs, video, f"{report_root}/posters/{p.id}.jpg") if status == "ok" else None
        return Card(p.id, status, values, dict(p.item.values.get("tags") or {}), size)

    with ThreadPoolExecutor(max_workers=8) as pool:  # decoding releases the GIL; thousands of posters add up
        return list(pool.map(card, planned))


def invalid_card(item_id: str, row: dict | None) -> Card:
    """The card of an item set aside as invalid (``--skip-invalid``): its row holds what of it parsed."""
    values = row or {}
    return Card(item_id, item_status(row), values, dict(values.get("tags") or []))


def _card_view(card: Card) -> dict:
    """What the template shows of one card, as plain text (the template escapes it)."""
    v = card.values
    fps, frames = v.get("frame_rate"), v.get("num_frames")
    clip = f"{frames / fps:.2f} s" if fps and frames else "–"
    total = _seconds(v)
    draft = v.get("pipeline") == "distilled"
    return {
        "item_id": card.item_id,
        "status": card.status,
        "pipeline": v.get("pipeline") or "two-stage",
        "promotable": draft and card.status == "ok",
        "uid": quote(card.item_id, safe=""),
        "tokens": " ".join(_tag_token(k, val) for k, val in sorted(card.tags.items())),
        "poster": card.poster,
        "tags": sorted(card.tags.items()),
        "facts": [
            ("duration", f"{clip} ({_fmt(frames)} frames @ {_fmt(fps)} fps)"),
            ("size", f"{_fmt(v.get('width'))}×{_fmt(v.get('height'))}"),
            ("seed", _fmt(v.get("seed"))),
            *([("images", _images(v["images"]))] if v.get("images") else []),
            *([("LoRAs", _loras(v["loras"]))] if v.get("loras") else []),
        ],
        "prompt": v.get("prompt") or "",
        "prompt_enhanced": v.get("prompt_enhanced"),
        "guidance": " · ".join(
            (["draft (distilled), no guidance"] if draft else [])
            + [f"{name} {_fmt(v.get(key))}" for name, key in (DRAFT if draft else GUIDANCE)]
        ),
        "timings": [(k, f"{t:.2f}s") for k, t in dict(v.get("timings") or []).items()],
        "total": f"{total:.1f}s" if total else None,
        "error": f"{v.get('error_type') or 'error'}: {v.get('error_message') or ''}",
        "seed": _fmt(v.get("seed")),
        **_quality_view(v),
    }


def _quality_view(values: dict) -> dict:
    """The card's scores as text, their raw values for sorting and filtering, and its retry labels."""
    quality = values.get("quality") or {}
    raw = {s.name: quality.get(s.name) for s in SCORES}
    return {
        "scores": [(s.name, _fmt(raw[s.name]), s.meaning) for s in SCORES] if quality else [],
        "quality_reason": quality.get("reason"),
        "qdata": [(s.name, "" if raw[s.name] is None else repr(raw[s.name])) for s in SCORES],
        "timeline": _timeline(quality),
        "best": bool(values.get("best")),
        "retry_of": values.get("retry_of"),
        "candidate": values.get("candidate"),
    }


def _timeline(quality: dict) -> dict | None:
    """A long item's windows as segments of a bar (left and width in % of its frames), each with its scores,
    and its seams as marks at their boundaries; ``weak`` marks a seam above ``WEAK_SEAM``. None for one window."""
    windows = quality.get("windows")
    if not windows:
        return None
    total = sum(w["frames"] for w in windows)
    segments = [
        {
            "left": round(100 * w["start"] / total, 3),
            "width": round(100 * w["frames"] / total, 3),
            "label": f"frames {w['start']}–{w['start'] + w['frames'] - 1}",
            "scores": f"sync {_fmt(w['lipsync_confidence'])} ({_signed(w['lipsync_offset_frames'])}) · "
            f"id {_fmt(w['identity_similarity'])} · colour {_fmt(w['colour_shift'])}",
        }
        for w in windows
    ]
    seams = [
        {
            "left": segments[k + 1]["left"],
            "frame": windows[k + 1]["start"],
            "score": _fmt(score),
            "weak": score > WEAK_SEAM,
        }
        for k, score in enumerate(quality.get("seams") or [])
    ]
    return {"windows": segments, "seams": seams}


def _signed(value: int | None) -> str:
    return "–" if value is None else f"{value:+d}"


def _groups(views: list[dict], retry: dict | None) -> list[dict]:
    """Cards in plan order; a retry run's candidates of one item together, with the original's score."""
    out: list[dict] = []
    by_origin: dict[str, dict] = {}
    for view in views:
        origin = view["retry_of"]
        if origin is None:
            out.append({"origin": None, "cards": [view]})
            continue
        if origin not in by_origin:
            original = (retry or {}).get("originals", {}).get(origin, {})
            by = (retry or {}).get("by")
            note = f"original {by} {_fmt(original.get(by))}" if by else ""
            by_origin[origin] = {"origin": origin, "uid": quote(origin, safe=""), "note": note, "cards": []}
            out.append(by_origin[origin])
        by_origin[origin]["cards"].append(view)
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
    as this report always has (markupsafe writes ``&#34;``); ``Markup`` (a macro's output) passes unchanged."""
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
    views = [_card_view(c) for c in cards]
    return TEMPLATES.get_template("report.html.j2").render(
        info=info,
        groups=_groups(views, retry),
        promotable=any(view["promotable"] for view in views),
        scores=SCORES,
        figures=figures,
        total=summary.total,
        counts=summary.counts,
        tag_values=_tag_values(cards),
        run_command=run_command,
        promote_command=promote_command,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def build_report(run_uri: str) -> Path:
    """Write ``RUN/report/index.html`` and its posters; return the page's path (inside the bucket for a URI)."""
    run = RunFolder(run_uri)
    fs, root = filesystem(run_uri)
    report_root = f"{root.rstrip('/')}/report"
    planned, attempts, invalid = run.plan(), read_results(run.results_uri), invalid_ids(run)
    latest = latest_by_item(planned, attempts, invalid)
    cards = [invalid_card(i, latest.get(i)) for i in invalid] + collect_cards(run, planned, latest, fs, report_root)
    folder = local_or_uri(run_uri)
    command = f"python -m ray_jobs.render --resume {shlex.quote(folder)}"
    promote = f"ltx-batch promote {shlex.quote(folder)} --out {shlex.quote(folder.rstrip('/') + '-final')}"
    summary = summarize([p.id for p in planned], attempts, invalid)
    page = render_page(run.run_info(), cards, summary, command, promote, retry_info(run))
    index = f"{report_root}/index.html"
    write_atomically(fs, index, lambda stream: stream.write(page.encode()))
    return Path(index)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m ray_jobs.report RUN   (writes RUN/report/index.html)", file=sys.stderr)
        return 2
    path = build_report(args[0])
    print(join(args[0], "report/index.html") if is_uri(args[0]) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
