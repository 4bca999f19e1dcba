"""What a user gets through the product: ``python -m tools.bench product``.

    python -m tools.bench product --bundle DIR --out product.json                       # on one GPU
    python -m tools.bench product --bundle TINY --device cpu --campaign 3 --lessons 1 --lesson-seconds 12 \\
        --out product.json                                                                # a CPU smoke run

Each run is the real command, ``python -m ray_jobs.render MANIFEST --out RUN --actors 1 --cache CACHE``, on a
fresh local Ray with empty inductor and Triton caches (their folders are new for every run), into a new run
folder. Two manifests:

- ``campaign``: ``--campaign`` items of 3 to 20 s (evenly spread), every prompt different, cut from one long
  recording at different places (items over ``window_seconds`` render as windows);
- ``lessons``: ``--lessons`` lessons of ``--lesson-seconds`` in ``continuous`` mode (one chain each).

``--runs`` names the runs in order, each ``MANIFEST:cold`` (the artifact cache emptied first) or
``MANIFEST:persisted`` (the artifacts the runs before it left in the cache: compiled graphs, FP8 weights; both
manifests share the model, shapes and recipe, so one cache serves both). Per run it reports the wall from submit
to the last mp4, the worker's load and warm-up seconds (its ready line), GPU-seconds per second of video over that
whole wall, and the items' own device seconds (each row's timings but the mux and the wait for scores: what the
engine spends on the item in a steady state), with the wall's ratio to them. An item whose device seconds per
video second is far above the median would show a compile inside an item.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from runstore.results import read_results
from runstore.run_folder import RunFolder
from tools.bench_long_scaling import CPU_SETTINGS
from tools.bench_scaling import render_command
from tools.long_lesson import write_lesson
from tools.reference_clip import IMAGE, PROMPT, ensure_bundle, reference_defaults

REPO = Path(__file__).resolve().parents[1]
NOT_DEVICE_WORK = ("mux", "quality_wait")  # timings that overlap the next item or wait for scores
READY = re.compile(r"model loaded in ([\d.]+)s, warmed up in ([\d.]+)s")
SHORTEST, LONGEST = 3.0, 20.0  # the campaign's item lengths, seconds


def campaign_lengths(count: int) -> list[float]:
    """``count`` lengths from SHORTEST to LONGEST seconds, evenly spread."""
    if count == 1:
        return [SHORTEST]
    return [round(SHORTEST + (LONGEST - SHORTEST) * i / (count - 1), 2) for i in range(count)]


def write_manifests(work: Path, bundle: Path, campaign: int, lessons: int, lesson_seconds: float) -> dict[str, Path]:
    recording = write_lesson(work / "recording.wav", max(LONGEST + 2 * campaign, lesson_seconds + 2 * lessons))
    defaults = {k: v for k, v in reference_defaults().items() if k != "num_frames"}  # lengths follow the audio
    defaults.update(audio=str(recording), image=str(IMAGE))
    model = {"bundle": str(bundle)}
    items = {
        "campaign": [
            {
                "id": f"voice-{i:03d}",
                "prompt": PROMPT.format(i),
                "audio_start_time": float(2 * i),
                "audio_max_duration": seconds,
            }
            for i, seconds in enumerate(campaign_lengths(campaign))
        ],
        "lessons": [
            {
                "id": f"lesson-{i}",
                "prompt": PROMPT.format(100 + i),
                "audio_start_time": float(2 * i),
                "audio_max_duration": lesson_seconds,
                "long_form": "continuous",
            }
            for i in range(lessons)
        ],
    }
    paths = {}
    for name, entries in items.items():
        if entries:
            paths[name] = work / f"{name}.yaml"
            paths[name].write_text(
                yaml.safe_dump({"run_seed": 3, "model": model, "defaults": defaults, "items": entries}, sort_keys=False)
            )
    return paths


def measure(manifest: Path, run: Path, cache: Path, device: str, extra: list[str]) -> dict:
    """One submit of ``manifest`` into the new run folder ``run``, its figures from the results and the log."""
    shutil.rmtree(run, ignore_errors=True)
    local = run.parent / f"{run.name}-local-caches"
    shutil.rmtree(local, ignore_errors=True)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(local / "inductor"), "TRITON_CACHE_DIR": str(local / "triton")}
    options = ("--actors", "1", "--cache", str(cache), "--device", device, *extra)
    command = render_command(manifest, run, *options)
    submitted = datetime.now(UTC)
    start = time.perf_counter()
    log_path = run.parent / f"{run.name}.log"
    with open(log_path, "w") as log:
        code = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    command_wall = time.perf_counter() - start
    rows = [r for r in read_results(RunFolder(str(run)).results_uri).to_pylist() if r["status"] == "ok"]
    if not rows:
        raise RuntimeError(f"nothing rendered (exit {code}); see {log_path}")
    ready = READY.search(log_path.read_text())
    video = {r["item_id"]: r["num_frames"] / r["frame_rate"] for r in rows}
    device_s = {r["item_id"]: sum(v for k, v in (r["timings"] or []) if k not in NOT_DEVICE_WORK) for r in rows}
    per_video_s = [device_s[i] / video[i] for i in video]
    wall = (max(r["finished_at"] for r in rows) - submitted).total_seconds()
    return {
        "exit_code": code,
        "items_ok": len(rows),
        "video_s": sum(video.values()),
        "wall_submit_to_last_mp4_s": wall,
        "command_wall_s": command_wall,
        "load_s": float(ready.group(1)) if ready else None,
        "warm_up_s": float(ready.group(2)) if ready else None,
        "items_device_s": sum(device_s.values()),
        "wall_over_items_device": wall / sum(device_s.values()),
        "gpu_s_per_video_s_wall": wall / sum(video.values()),
        "device_s_per_video_s_median": statistics.median(per_video_s),
        "device_s_per_video_s_max": max(per_video_s),
        "frames": sorted({r["num_frames"] for r in rows}),
    }


RUNS = ["campaign:cold", "campaign:persisted", "lessons:cold", "lessons:persisted"]


def run(
    bundle: str, out: Path, device: str, campaign: int, lessons: int, lesson_seconds: float, runs: list[str]
) -> dict:
    work = out.parent / "product"
    work.mkdir(parents=True, exist_ok=True)
    folder, made_s = ensure_bundle(Path(bundle)) if device == "cuda" else (Path(bundle), None)
    manifests = write_manifests(work, folder.resolve(), campaign, lessons, lesson_seconds)
    extra = CPU_SETTINGS if device == "cpu" else []
    report: dict = {"bundle_written_s": made_s, "device": device, "runs": {}}
    cache = work / "artifacts"
    for name, label in (entry.split(":") for entry in runs):
        if label == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        row = measure(manifests[name], work / f"{name}-{label}", cache, device, extra)
        report["runs"][f"{name}-{label}"] = row
        print(json.dumps({"run": f"{name}-{label}", **row}), flush=True)
    return report
