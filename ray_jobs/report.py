"""A static HTML report of a run: ``python -m ray_jobs.report RUN`` writes ``RUN/report/index.html``.

One card per planned item, with a poster frame, settings, timings and, for failures, the error and the
command that re-renders it. The page is self-contained (no network, no framework) and stays usable for
thousands of items: thumbnails are small lazy-loaded JPEG files beside the page, and every card's filter
data lives in plain ``data-`` attributes rather than in a big inline JSON blob.
"""

from __future__ import annotations

import io
import shlex
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

import av
import pyarrow.fs as pafs
from PIL import Image, UnidentifiedImageError

from manifests.results import latest_attempts, read_results
from manifests.run_folder import RunFolder
from manifests.storage import filesystem, is_uri, join, write_atomically

POSTER_WIDTH = 256
STATUS_ORDER = ("ok", "failed", "skipped", "pending")
GUIDANCE = (("steps", "num_inference_steps"), ("cfg", "video_cfg_scale"), ("stg", "video_stg_scale"),
            ("rescale", "video_rescale_scale"), ("modality", "video_modality_scale"),
            ("skip step", "video_skip_step"), ("stg blocks", "video_stg_blocks"),
            ("distilled LoRA", "distilled_lora_strength"))  # fmt: skip


@dataclass(frozen=True)
class Card:
    """Everything one item's card shows; ``values`` are the resolved settings (plan, then result row)."""

    item_id: str
    status: str
    values: dict
    tags: dict[str, str]
    poster: tuple[int, int] | None = None  # (width, height) of the poster JPEG when there is one


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _tag_token(key: str, value: str) -> str:
    """One space-free token per tag, so the filter script can match a card with a plain string compare."""
    return f"{quote(key, safe='')}={quote(value, safe='')}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "–" if value is None else str(value)


def _seconds(row: dict) -> float | None:
    start, end = row.get("started_at"), row.get("finished_at")
    return (end - start).total_seconds() if start and end else None


def extract_poster(fs: pafs.FileSystem, video_path: str) -> tuple[bytes, tuple[int, int]]:
    """The middle frame as a small JPEG: seek to the nearest keyframe before it, decode up to it."""
    with fs.open_input_file(video_path) as f, av.open(f) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        middle = (stream.duration or 0) // 2
        if stream.frames and stream.average_rate:  # exact: the frame at index frames // 2
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


def collect_cards(run: RunFolder, fs: pafs.FileSystem, report_root: str) -> tuple[list[Card], list[dict]]:
    """Cards in plan order (posters written on the way) and the latest result rows they were built from."""
    latest = {r["item_id"]: r for r in latest_attempts(read_results(run.results_uri)).to_pylist()}
    planned = run.plan()
    fs.create_dir(f"{report_root}/posters", recursive=True)

    def card(p) -> Card:
        row = latest.get(p.id)
        status = row["status"] if row else "pending"
        values = {**p.item.values, **(row or {})}
        video = filesystem(run.video_uri(p.id))[1]  # video_uri refuses ids that could leave the folder
        size = _poster(fs, video, f"{report_root}/posters/{p.id}.jpg") if status == "ok" else None
        return Card(p.id, status, values, dict(p.item.values.get("tags") or {}), size)

    with ThreadPoolExecutor(max_workers=8) as pool:  # decoding releases the GIL; thousands of posters add up
        cards = list(pool.map(card, planned))
    return cards, [latest[p.id] for p in planned if p.id in latest]


def summary(cards: list[Card], rows: list[dict]) -> dict:
    """Counts per status, total worker seconds of each item's latest attempt, and ok clips per hour."""
    counts = Counter(c.status for c in cards)
    seconds = sum(s for s in map(_seconds, rows) if s)
    rate = counts["ok"] / (seconds / 3600) if seconds else 0.0
    return {"total": len(cards), **{s: counts[s] for s in STATUS_ORDER}, "seconds": seconds, "clips_per_hour": rate}


def _card_html(card: Card, run_command: str) -> str:
    v, uid = card.values, quote(card.item_id, safe="")
    classes = f"card {card.status}"
    tokens = " ".join(_tag_token(k, val) for k, val in sorted(card.tags.items()))
    if card.poster:
        w, h = card.poster
        media = f'<img loading="lazy" src="posters/{_e(uid)}.jpg" width="{w}" height="{h}" alt="">'
    else:
        media = f'<div class="noposter">{_e("no poster" if card.status == "ok" else card.status)}</div>'
    fps, frames = v.get("frame_rate"), v.get("num_frames")
    clip = f"{frames / fps:.2f} s" if fps and frames else "–"
    tags = "".join(f"<li>{_e(k)}: {_e(val)}</li>" for k, val in sorted(card.tags.items()))
    facts = [("duration", f"{clip} ({_fmt(frames)} frames @ {_fmt(fps)} fps)"),
             ("size", f"{_fmt(v.get('width'))}×{_fmt(v.get('height'))}"), ("seed", _fmt(v.get("seed")))]  # fmt: skip
    guidance = " · ".join(f"{name} {_fmt(v.get(key))}" for name, key in GUIDANCE)
    timings = dict(v.get("timings") or [])
    parts = [
        f'<article class="{classes}" id="item-{_e(uid)}" data-status="{_e(card.status)}" data-tags="{_e(tokens)}">',
        media,
        f'<h2><span class="badge">{_e(card.status)}</span> <span class="id">{_e(card.item_id)}</span></h2>',
        f'<ul class="tags">{tags}</ul>' if tags else "",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{_e(val)}</dd>" for k, val in facts) + "</dl>",
        f'<p class="guidance">{_e(guidance)}</p>',
    ]
    if timings:
        spans = " ".join(f"<span>{_e(k)} {t:.2f}s</span>" for k, t in timings.items())
        total = _seconds(v)
        parts.append(f'<p class="timings">{spans}' + (f" <b>total {total:.1f}s</b>" if total else "") + "</p>")
    if card.status == "failed":
        error = f"{v.get('error_type') or 'error'}: {v.get('error_message') or ''}"
        parts += [
            f'<pre class="error">{_e(error)}</pre>',
            f'<div class="retry"><code id="cmd-{_e(uid)}">{_e(run_command)}</code>'
            f'<button type="button" class="copy" data-target="cmd-{_e(uid)}">copy</button></div>',
            f'<p class="hint">re-renders every item without an ok result, this one with seed {_fmt(v.get("seed"))}</p>',
        ]
    if card.status == "ok":
        parts.append(f'<a class="video" href="../videos/{_e(uid)}.mp4">{_e(card.item_id)}.mp4</a>')
    return "\n".join(p for p in parts if p) + "\n</article>"


def _filters_html(cards: list[Card], stats: dict) -> str:
    options = [f'<option value="all">all ({stats["total"]})</option>']
    options += [f'<option value="{s}">{s} ({stats[s]})</option>' for s in STATUS_ORDER if stats[s] or s != "skipped"]
    selects = [f'<label>status <select id="status-filter">{"".join(options)}</select></label>']
    values: dict[str, Counter] = {}
    for card in cards:
        for k, val in card.tags.items():
            values.setdefault(k, Counter())[val] += 1
    for key in sorted(values):
        opts = "".join(f'<option value="{_e(_tag_token(key, val))}">{_e(val)} ({n})</option>'
                       for val, n in sorted(values[key].items()))  # fmt: skip
        selects.append(f'<label>{_e(key)} <select class="tag-filter" data-key="{_e(key)}">'
                       f'<option value="">all</option>{opts}</select></label>')  # fmt: skip
    return '<form class="filters" onsubmit="return false">' + "".join(selects) + '<span id="shown"></span></form>'


def render_page(info: dict, cards: list[Card], stats: dict, run_command: str) -> str:
    """The whole page as one string; separated from file access so it can be tried on synthetic cards."""
    figures = [("total", "items", stats["total"]), ("ok", "ok", stats["ok"]), ("failed", "failed", stats["failed"]),
               ("pending", "pending", stats["pending"]), ("seconds", "render seconds", f"{stats['seconds']:,.1f}"),
               ("rate", "clips / hour", f"{stats['clips_per_hour']:,.1f}")]  # fmt: skip
    if stats["skipped"]:
        figures.insert(3, ("skipped", "skipped", stats["skipped"]))
    figs = "".join(f'<div class="fig {k}" data-figure="{k}"><b>{_e(v)}</b><span>{label}</span></div>'
                   for k, label, v in figures)  # fmt: skip
    meta = " · ".join(f"{label} {_e(info.get(k, '–'))}" for label, k in (("submitted", "submitted_at"),
                                                                          ("code", "code_version")))  # fmt: skip
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "\n".join(_card_html(c, run_command) for c in cards)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Run {_e(info.get("run_id", ""))}</title>
<style>{CSS}</style></head>
<body>
<header><h1>Run <span id="run-id">{_e(info.get("run_id", "–"))}</span></h1>
<p class="meta">{meta} · report generated {generated}</p>
<div class="summary">{figs}</div>
{_filters_html(cards, stats)}</header>
<main class="grid">
{body}
</main>
<script>{SCRIPT}</script>
</body></html>
"""


def build_report(run_uri: str) -> Path:
    """Write ``RUN/report/index.html`` and its posters; return the page's path (inside the bucket for a URI)."""
    run = RunFolder(run_uri)
    fs, root = filesystem(run_uri)
    report_root = f"{root.rstrip('/')}/report"
    cards, rows = collect_cards(run, fs, report_root)
    folder = run_uri if is_uri(run_uri) else str(Path(run_uri).expanduser().resolve())
    page = render_page(
        run.run_info(), cards, summary(cards, rows), f"python -m ray_jobs.render --resume {shlex.quote(folder)}"
    )
    index = f"{report_root}/index.html"
    write_atomically(fs, index, lambda stream: stream.write(page.encode()))
    return Path(index)


CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d232a;background:#f3f4f6}
header{padding:16px 24px;background:#fff;border-bottom:1px solid #d9dde3;position:sticky;top:0;z-index:1}
h1{margin:0;font-size:20px}.meta{margin:2px 0 10px;color:#5b6573;font-size:12px}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}
.fig{background:#f3f4f6;border-radius:6px;padding:6px 12px;min-width:88px}
.fig b{display:block;font-size:18px}.fig span{color:#5b6573;font-size:12px}
.fig.failed b{color:#b42318}.fig.ok b{color:#207a3c}
.filters{display:flex;flex-wrap:wrap;gap:14px;align-items:center}
.filters select{margin-left:4px;padding:2px 4px}#shown{color:#5b6573}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:14px;padding:16px 24px}
.card{background:#fff;border:1px solid #d9dde3;border-radius:8px;padding:10px;overflow:hidden;
  content-visibility:auto;contain-intrinsic-size:auto 420px}
.card.hidden{display:none}
.card img,.noposter{display:block;width:100%;height:auto;border-radius:4px;background:#e5e7eb}
.noposter{aspect-ratio:3/2;display:flex;align-items:center;justify-content:center;color:#6b7280}
.card.failed{border:2px solid #d92d20;background:#fef3f2}.card.failed .noposter{background:#fee4e2;color:#b42318}
.card.pending{border-style:dashed}
h2{font-size:14px;margin:8px 0 4px;word-break:break-all}
.badge{display:inline-block;font-size:11px;text-transform:uppercase;padding:1px 6px;border-radius:4px;
  background:#e5e7eb;color:#374151}
.ok .badge{background:#d1fadf;color:#05603a}.failed .badge{background:#d92d20;color:#fff}
.tags{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px}
.tags li{background:#eef2ff;color:#3730a3;border-radius:10px;padding:0 8px;font-size:12px}
dl{display:grid;grid-template-columns:auto 1fr;gap:0 8px;margin:6px 0;font-size:12px}dt{color:#5b6573}dd{margin:0}
.guidance,.timings,.hint{font-size:11px;color:#5b6573;margin:4px 0}
.timings{display:flex;flex-wrap:wrap;gap:0 8px}.timings span,.timings b{white-space:nowrap}
.error{white-space:pre-wrap;word-break:break-word;max-height:8em;overflow:auto;background:#fee4e2;color:#7a271a;
  padding:6px;border-radius:4px;font-size:12px;margin:6px 0}
.retry{display:flex;gap:6px;align-items:flex-start}
.retry code{flex:1;font-size:11px;background:#1d232a;color:#f3f4f6;padding:4px 6px;border-radius:4px;
  word-break:break-all}
.copy{font-size:11px;cursor:pointer}
a.video{font-size:12px}
"""

SCRIPT = """
(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var tags = cards.map(function (c) { return c.dataset.tags ? c.dataset.tags.split(" ") : []; });
  var status = document.getElementById("status-filter");
  var tagFilters = Array.prototype.slice.call(document.querySelectorAll("select.tag-filter"));
  var shown = document.getElementById("shown");
  function apply() {
    var want = status.value;
    var needed = tagFilters.map(function (s) { return s.value; }).filter(Boolean);
    var visible = 0;
    cards.forEach(function (card, i) {
      var keep = (want === "all" || card.dataset.status === want) &&
        needed.every(function (t) { return tags[i].indexOf(t) >= 0; });
      card.classList.toggle("hidden", !keep);
      if (keep) visible++;
    });
    shown.textContent = visible + " of " + cards.length + " shown";
  }
  status.addEventListener("change", apply);
  tagFilters.forEach(function (s) { s.addEventListener("change", apply); });
  function selectText(node, button) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    button.textContent = copied ? "copied" : "press Ctrl+C";
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) return;
    var node = document.getElementById(button.dataset.target);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(node.textContent).then(
        function () { button.textContent = "copied"; },
        function () { selectText(node, button); });
    } else {
      selectText(node, button);
    }
  });
  apply();
})();
"""


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
