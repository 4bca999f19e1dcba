"""The batch front end at campaign scale, on the CPU: ``python -m tools.bench campaign``.

    python -m tools.bench campaign --rows 100000 --yaml-items 10000 --out campaign.json
    python -m tools.bench campaign --rows 10000 --yaml-items 2000 --skip render --out small.json

Builds a Parquet campaign of ``--rows`` rows and a YAML one of ``--yaml-items`` items from five real audio files
(the example lesson's three recordings, a WAV cut and a FLAC made from them) and one image, with the columns users
bring (``city``, ``segment``, ``language``: kept as tags). Each figure is a command as a user types it, run in a
process of its own: its wall, its own peak RSS (``wait4``: exact) and its process tree's (polled every
``POLL_S``), and what it printed, line by line as it came:

- ``validate``: ``ltx-batch validate`` on each manifest, and how many lines it printed;
- ``render``: ``python -m ray_jobs.render`` of the Parquet campaign on a local Ray (2 CPUs, the tiny bundle),
  stopped (SIGINT, then SIGKILL) once the first item is done: ``plan_s`` is when the driver prints
  "N of M items to render", right before it hands out the first shard; ``first_item_s`` the first item's line;
- ``status``: ``ltx-batch status`` and ``ltx-batch report`` on a run of ``--rows`` items written by
  ``tools/synthetic_run.py``, and the report page in headless Chromium until its first cards are there.

The issue's targets hold at 100,000 rows and 10,000 items; at a smaller size the verdicts only show the trend.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fixtures.random_bundle import QUICK_SETTINGS
from ltxcore.media import decode_audio
from tools.demo import set_flags

REPO = Path(__file__).resolve().parents[1]
LESSON = REPO / "manifests" / "examples" / "lesson"
MIB = 2**20
POLL_S = 0.1  # how often a process tree's memory (and whether the command ended) is looked at
GRACE_S = 20.0  # after SIGINT, before SIGKILL
RENDER_LIMIT_S = 900.0  # a driver with no finished item by then is stopped
PAGE_LIMIT_S = 60.0
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

# (file in media/, its language, made from, seconds kept): five distinct files, four decoders
AUDIO = (
    ("de.mp3", "de", "de.mp3", None),
    ("en.ogg", "en", "en.ogg", None),
    ("es.m4a", "es", "es.m4a", None),
    ("en-cut.wav", "en", "en.ogg", 5.0),
    ("de.flac", "de", "de.mp3", None),
)
IMAGE = "presenter.png"
TEMPLATE = "A friendly host in {city} greets {name} by name and smiles at the camera, warm light"
CITIES = ("Lisbon", "Berlin", "Madrid", "Paris", "Vienna", "Warsaw", "Porto")
NAMES = ("Ada", "Bruno", "Carmen", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kasia")
SEGMENTS = ("new", "returning", "lapsed")
DEFAULTS = {"image": f"media/{IMAGE}", "height": 512, "width": 768}
# The tiny bundle's quickest render (tests/conftest.py's SHORT_RENDER): 0.3 s clips at 128x128 in 2 steps.
RENDER_SETTINGS = [
    *set_flags(**{**QUICK_SETTINGS, "width": 128, "audio_max_duration": 0.3}),
    *("--actors", "1", "--cpus-per-actor", "1", "--local-cpus", "2", "--device", "cpu"),
]


def _write_media(folder: Path) -> list[tuple[str, str]]:
    """The campaign's media in ``folder/media``; (path relative to ``folder``, language) per audio file."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    shutil.copy(LESSON / IMAGE, media / IMAGE)
    for name, _, source, seconds in AUDIO:
        if name == source:
            shutil.copy(LESSON / source, media / name)
        elif not (media / name).is_file():
            _reencode(LESSON / source, media / name, seconds)
    return [(f"media/{name}", language) for name, language, _, _ in AUDIO]


def _reencode(source: Path, target: Path, seconds: float | None) -> None:
    """``source`` decoded and written as 16-bit PCM (WAV) or FLAC, as chosen by ``target``'s suffix."""
    clip = decode_audio(str(source), 0.0, seconds, mono=True)
    codec = "flac" if target.suffix == ".flac" else "pcm_s16le"
    with av.open(str(target), "w") as container:
        stream = container.add_stream(codec, rate=clip.sample_rate)
        stream.layout = "mono"
        samples = np.ascontiguousarray(clip.samples[:1])
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = clip.sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def campaign_rows(count: int, audio: list[tuple[str, str]]) -> list[dict]:
    """``count`` personalised rows: every prompt different, the audio files taken in turn."""
    rows = []
    for i in range(count):
        path, language = audio[i % len(audio)]
        city, name = CITIES[i % len(CITIES)], NAMES[i % len(NAMES)]
        rows.append(
            {
                "id": f"welcome-{i:06d}",
                "audio": path,
                "prompt": f"{TEMPLATE.format(city=city, name=name)}, take {i}",
                "seed": i,
                "city": city,
                "segment": SEGMENTS[i % len(SEGMENTS)],
                "language": language,
            }
        )
    return rows


def build_parquet_campaign(folder: Path, rows: int) -> Path:
    """``folder/campaign.parquet`` with ``rows`` rows, its defaults in ``campaign.yaml`` beside it."""
    audio = _write_media(folder)
    manifest = folder / "campaign.parquet"
    pq.write_table(pa.Table.from_pylist(campaign_rows(rows, audio)), manifest)
    manifest.with_suffix(".yaml").write_text(yaml.safe_dump({"defaults": DEFAULTS}, sort_keys=False))
    return manifest


def build_yaml_campaign(folder: Path, items: int) -> Path:
    """``folder/campaign.yaml`` with ``items`` items under ``items:``, the same defaults under ``defaults:``."""
    audio = _write_media(folder)
    manifest = folder / "campaign.yaml"
    body = {"defaults": DEFAULTS, "items": campaign_rows(items, audio)}
    manifest.write_text(yaml.dump(body, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))
    return manifest


@dataclass(frozen=True)
class Measured:
    """A command run as a user runs it: what it printed (seconds since the start, line), how it ended, memory."""

    command: tuple[str, ...]
    exit_code: int
    wall_s: float  # to within POLL_S
    lines: tuple[tuple[float, str], ...]
    peak_rss_mib: float  # its own peak RSS, or a larger one of a child it waited for (wait4's ru_maxrss)
    tree_peak_rss_mib: float  # the largest sum over it and its descendants seen, polled every POLL_S

    def first(self, predicate: Callable[[str], bool]) -> float | None:
        """When the first line that ``predicate`` accepts was printed."""
        return next((round(at, 2) for at, line in self.lines if predicate(line)), None)

    def figures(self) -> dict:
        return {
            "command": " ".join(self.command),
            "exit_code": self.exit_code,
            "wall_s": round(self.wall_s, 2),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "tree_peak_rss_mib": round(self.tree_peak_rss_mib, 1),
            "lines": len(self.lines),
        }

    def write_log(self, path: Path) -> None:
        path.write_text("".join(f"{at:9.2f}  {line}\n" for at, line in self.lines))


def _tree_rss_mib(pid: int) -> float:
    """The summed RSS of ``pid`` and its descendants now (those gone meanwhile count 0)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
    return total / MIB


def run_measured(
    command: list[str],
    env: dict[str, str] | None = None,
    stop: Callable[[str], bool] | None = None,
    limit_s: float | None = None,
) -> Measured:
    """Run ``command`` in a session of its own, its output read as it comes, to its end; or, once a line
    satisfies ``stop`` (or after ``limit_s``), the session gets SIGINT, and SIGKILL ``GRACE_S`` later."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[tuple[float, str]] = []
    stopping = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            if stop is not None and stop(line):
                stopping.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    tree_peak, interrupted, killed = 0.0, 0.0, False
    while True:
        tree_peak = max(tree_peak, _tree_rss_mib(process.pid))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter()
        if not interrupted and (stopping.is_set() or (limit_s is not None and now - start > limit_s)):
            os.killpg(process.pid, signal.SIGINT)
            interrupted = now
        elif interrupted and not killed and now - interrupted > GRACE_S:
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=GRACE_S)  # a grandchild may still hold the pipe; what it prints later is not waited for
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return Measured(tuple(command), process.returncode, wall, tuple(lines), peak, tree_peak)


def _cli(*args: str) -> list[str]:
    """``ltx-batch ARGS`` (the console script's own entry point, ``ray_jobs.cli:main``)."""
    return [sys.executable, "-m", "ray_jobs.cli", *args]


def validate(manifest: Path, work: Path, name: str) -> dict:
    measured = run_measured(_cli("validate", str(manifest)))
    measured.write_log(work / f"{name}.log")
    return measured.figures()


def _is_item_line(line: str) -> bool:
    return line.startswith('{"item"')


def tiny_bundle(folder: Path) -> Path:
    """The tiny random bundle in ``folder``, written first if it is not there."""
    from fixtures.random_bundle import make_tiny_bundle
    from ltxcore.bundle import ModelBundle
    from ltxcore.errors import BundleError

    try:
        ModelBundle.from_folder(folder)
    except BundleError:
        make_tiny_bundle(folder)
    return folder


def first_shard(manifest: Path, work: Path, bundle: Path) -> dict:
    """Submit ``manifest`` to a local Ray of its own and stop the driver once an item is done."""
    run = work / "render-run"
    shutil.rmtree(run, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, as a laptop user's
    command = [sys.executable, "-m", "ray_jobs.render", str(manifest), "--out", str(run), "--bundle", str(bundle)]
    measured = run_measured([*command, *RENDER_SETTINGS], env, _is_item_line, RENDER_LIMIT_S)
    measured.write_log(work / "render.log")
    first_item = next((json.loads(line) for _, line in measured.lines if _is_item_line(line)), {})
    return {
        **measured.figures(),
        "plan_s": measured.first(lambda line: "items to render" in line),
        "first_item_s": measured.first(_is_item_line),
        "first_item_status": first_item.get("status"),
    }


def page_load(index: Path, profile: Path) -> dict:
    """Seconds from asking headless Chromium for the report page until it is loaded with its first card."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return {"not_measured": f"no {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"}
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LIMIT_S)
        start = time.perf_counter()
        driver.get(index.as_uri())
        WebDriverWait(driver, PAGE_LIMIT_S, poll_frequency=0.05).until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && document.querySelector('article.card') !== null"
            )
        )
        load_s = time.perf_counter() - start
        cards = driver.execute_script("return document.querySelectorAll('article.card').length")
    finally:
        driver.quit()
    return {"load_s": round(load_s, 2), "cards": cards}


def status_and_report(work: Path, items: int) -> dict[str, dict]:
    """``status``, ``report`` and the report page on a synthetic run of ``items`` items."""
    from runstore.run_folder import RunFolder

    try:
        synthetic = importlib.import_module("tools.synthetic_run")
    except ModuleNotFoundError as e:
        if e.name != "tools.synthetic_run":
            raise
        missing = {"not_measured": "tools/synthetic_run.py missing"}
        return {"status": missing, "report": missing, "report_page": missing}
    run = work / "synthetic-run"
    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    synthetic.build_synthetic_run(run, items)
    built_s = time.perf_counter() - start
    status = run_measured(_cli("status", str(run)))
    report = run_measured(_cli("report", str(run)))
    shutil.rmtree(work / "chromium-profile", ignore_errors=True)
    page = page_load(Path(RunFolder(str(run)).report_page_uri), work / "chromium-profile")
    return {
        "status": {**status.figures(), "run_built_s": round(built_s, 1)},
        "report": report.figures(),
        "report_page": page,
    }


@dataclass(frozen=True)
class Figure:
    """A row of the printed table: a figure of the results, and the issue's bound on it if it sets one."""

    label: str
    part: str
    key: str
    unit: str
    limit: float | None = None


FIGURES = (
    Figure("validate Parquet: wall", "validate_parquet", "wall_s", "s", 60),
    Figure("validate Parquet: peak RSS", "validate_parquet", "peak_rss_mib", "MiB", 2048),
    Figure("validate Parquet: lines printed", "validate_parquet", "lines", "", 50),
    Figure("validate YAML: wall", "validate_yaml", "wall_s", "s", 10),
    Figure("validate YAML: peak RSS", "validate_yaml", "peak_rss_mib", "MiB"),
    Figure("validate YAML: lines printed", "validate_yaml", "lines", "", 50),
    Figure("render: plan (first shard dispatched)", "render", "plan_s", "s", 90),
    Figure("render: first item done", "render", "first_item_s", "s"),
    Figure("render: driver peak RSS", "render", "peak_rss_mib", "MiB"),
    Figure("render: process tree peak RSS", "render", "tree_peak_rss_mib", "MiB"),
    Figure("status: wall", "status", "wall_s", "s", 5),
    Figure("status: peak RSS", "status", "peak_rss_mib", "MiB"),
    Figure("report: build wall", "report", "wall_s", "s"),
    Figure("report page: load in Chromium", "report_page", "load_s", "s", 5),
)


def verdicts(figures: dict[str, dict]) -> list[dict]:
    """Each table row's value and, where the issue sets a bound, whether it is met: None if the part was not
    measured, False if it was but the figure is missing (a driver that never got to its first shard)."""
    rows = []
    for f in FIGURES:
        part = figures.get(f.part, {"not_measured": "skipped"})
        value = part.get(f.key)
        met = None if f.limit is None or "not_measured" in part else value is not None and value <= f.limit
        rows.append({"figure": f.label, "value": value, "unit": f.unit, "limit": f.limit, "met": met})
    return rows


def table(rows: list[dict], figures: dict[str, dict]) -> str:
    lines = [f"{'figure':40} {'value':>12} {'target':>12}  met"]
    for row, f in zip(rows, FIGURES, strict=True):
        value, part = row["value"], figures.get(f.part, {"not_measured": ""})
        shown = "not measured" if "not_measured" in part else "-"
        if isinstance(value, int | float):
            shown = f"{value} {f.unit}" if isinstance(value, int) else f"{value:.1f} {f.unit}"
        limit = f"<= {f.limit:g} {f.unit}" if f.limit is not None else ""
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        lines.append(f"{f.label:40} {shown:>12} {limit:>12}  {met}")
    reasons = sorted({v["not_measured"] for v in figures.values() if v.get("not_measured")})
    return "\n".join(lines + [f"not measured: {reason}" for reason in reasons])


def run(out: Path, rows: int, yaml_items: int, work: Path | None, bundle: str | None, skip: list[str]) -> dict:
    work = (work or out.parent / "campaign").resolve()
    work.mkdir(parents=True, exist_ok=True)
    parquet = build_parquet_campaign(work / "parquet", rows)
    figures: dict[str, dict] = {}
    if "validate" not in skip:
        figures["validate_parquet"] = validate(parquet, work, "validate-parquet")
        figures["validate_yaml"] = validate(build_yaml_campaign(work / "yaml", yaml_items), work, "validate-yaml")
    if "render" not in skip:
        figures["render"] = first_shard(parquet, work, Path(bundle) if bundle else tiny_bundle(work / "tiny-bundle"))
    if "status" not in skip:
        figures.update(status_and_report(work, rows))
    checked = verdicts(figures)
    print(f"campaign: {rows:,} Parquet rows, {yaml_items:,} YAML items (targets: 100,000 and 10,000)")
    print(table(checked, figures), flush=True)
    return {"rows": rows, "yaml_items": yaml_items, "work": str(work), "figures": figures, "targets": checked}
