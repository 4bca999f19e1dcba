"""Long lessons over several workers through the Ray driver: ``python -m tools.bench long-scaling``.

    python -m tools.bench long-scaling --bundle DIR --workers 1 4 --out long.json               # GPUs
    python -m tools.bench long-scaling --bundle TINY --device cpu --workers 1 2 --out long.json  # CPU workers

Three runs per worker count N, each the real command (``python -m ray_jobs.render MANIFEST --out RUN --actors N
--shard-size S``) on a local Ray, each a fresh run folder. With shards of one (the default here) a window's
encode is waited for at its shard's end; ``--shard-size 8``, the driver's default, overlaps it with the next
window.

- ``cuts``: one lesson of ``--cuts-seconds`` whose windows are independent, so they spread over the N workers:
  its wall from the first window's start to its joined mp4 (window records: write time less render seconds; a
  record is written after its window's encode, so the start reads late by at most one encode), against the
  same item on the fewest workers.
- ``continuous``: ``--lessons`` lessons of ``--lesson-seconds``, each a chain on one worker while the others
  render the other chains: lessons per hour over the rendering window (first started to last finished).
- ``killed`` (at the largest N): the continuous batch again, the worker that has just finished a window
  SIGKILLed; every lesson must still come out ``ok`` once, no finished window may render again (its record
  keeps its first write), and the killed chain's later windows are rendered by another worker: the item
  resumes from its last finished window.

The lessons are real speech with pauses (``tools/long_lesson.py``). ``--device cpu`` uses the tiny bundle's
sizes (128x192, 2 steps, STG on block 1) and one thread per worker; on GPUs the reference clip's settings.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psutil
import yaml

from fixtures.random_bundle import QUICK_SETTINGS
from ltxcore.windows import window_index
from runstore.results import read_results
from runstore.run_folder import RunFolder
from tools.demo import set_flags
from tools.long_lesson import write_lesson
from tools.reference_clip import IMAGE, PROMPT, ensure_bundle, reference_defaults
from tools.render_workers import render_actor_pids

REPO = Path(__file__).resolve().parents[1]


class WindowSeen(NamedTuple):
    written_ns: int  # a record is written once, when its window is whole
    seconds: float  # the window's render
    worker: int  # the pid that rendered it


CPU_SETTINGS = set_flags(**QUICK_SETTINGS)


def write_manifest(path: Path, audio: Path, lessons: int, long_form: str, device: str) -> Path:
    defaults = {"image": str(IMAGE), "long_form": long_form}
    if device != "cpu":
        fixed = ("num_frames", "audio", "audio_max_duration")  # a lesson's length is its audio's
        defaults = {**{k: v for k, v in reference_defaults().items() if k not in fixed}, **defaults}
    body = {
        "run_seed": 11,
        "defaults": defaults,
        "items": [{"id": f"lesson-{i:02d}", "audio": str(audio), "prompt": PROMPT.format(i)} for i in range(lessons)],
    }
    if device != "cpu":
        body["model"] = {"quantization": "fp8-scaled"}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def window_records(run: Path) -> dict[str, WindowSeen]:
    """Every whole window's record (``window-KKKK.json``; partial files are skipped), by item folder and name."""
    out = {}
    for path in Path(RunFolder(str(run)).windows_uri).glob("*/window-*.json"):
        if window_index(path.name) is None:
            continue
        record = json.loads(path.read_text())
        worker = int(record["rendered_by"].rsplit("/", 1)[-1])
        out[f"{path.parent.name}/{path.name}"] = WindowSeen(path.stat().st_mtime_ns, record["seconds"], worker)
    return out


def render(
    manifest: Path, run: Path, workers: int, bundle: Path, device: str, shard_size: int, kill: bool = False
) -> dict:
    """One run of the real command; with ``kill``, one worker is SIGKILLed once the first window is whole."""
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "ray_jobs.render", str(manifest), "--out", str(run), "--bundle", str(bundle)]
    command += ["--actors", str(workers), "--shard-size", str(shard_size), "--device", device]
    if device == "cpu":
        command += ["--cpus-per-actor", "1", "--local-cpus", str(workers), *CPU_SETTINGS]
    killed: dict = {}
    start = time.perf_counter()
    with open(run.with_suffix(".log"), "w") as log:
        driver = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        if kill:
            watcher = threading.Thread(target=_kill_after_first_window, args=(run, driver, killed), daemon=True)
            watcher.start()
        code = driver.wait()
    wall = time.perf_counter() - start
    results = RunFolder(str(run)).results_uri
    rows = read_results(results).to_pylist() if Path(results).exists() else []
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise RuntimeError(f"nothing rendered with {workers} worker(s) (exit {code}); see {run.with_suffix('.log')}")
    records = window_records(run)
    first_start = min(seen.written_ns / 1e9 - seen.seconds for seen in records.values())
    last_end = max(r["finished_at"].timestamp() for r in ok)
    report = {
        "workers": workers,
        "exit_code": code,
        "items": len({r["item_id"] for r in rows}),
        "ok_rows": len(ok),
        "ok_items": len({r["item_id"] for r in ok}),
        "windows": len(records),
        "window_render_s_median": statistics.median(seen.seconds for seen in records.values()),
        "rendered_by": len({w["rendered_by"] for r in ok for w in r["windows"]}),
        "command_wall_s": wall,
        "render_span_s": last_end - first_start,
    }
    if kill:
        report["killed"] = _resumed(killed, records)
    return report


def _kill_after_first_window(run: Path, driver: subprocess.Popen, out: dict) -> None:
    """SIGKILL the worker that has just finished a window (so its chain has one to resume from)."""
    while driver.poll() is None:
        records = window_records(run) if run.exists() else {}
        alive = set(render_actor_pids(driver.pid))
        victims = [(name, seen) for name, seen in records.items() if seen.worker in alive]
        if victims:
            name, seen = victims[0]
            psutil.Process(seen.worker).send_signal(signal.SIGKILL)
            out.update(records=records, pid=seen.worker, item=name.split("/")[0])
            return
        time.sleep(0.05)


def _resumed(killed: dict, after: dict[str, WindowSeen]) -> dict:
    """What the killed worker's chain did after the kill: its finished windows must keep their first write, and
    the rest of it must be rendered by another worker (the restarted one)."""
    if not killed:
        raise RuntimeError("no worker was killed: no window finished while a worker was alive to kill")
    before: dict[str, WindowSeen] = killed["records"]
    item = killed["item"]
    done = sorted(name for name in before if name.startswith(item + "/"))
    later = sorted(name for name in after if name.startswith(item + "/") and name not in before)
    return {
        "pid": killed["pid"],
        "item": item,
        "windows_done_at_kill": len(done),
        "resumed_at_window": window_index(later[0].split("/")[1]) if later else None,
        "windows_after_kill": len(later),
        "later_windows_by_other_workers": all(after[name].worker != killed["pid"] for name in later),
        "windows_rendered_again": sum(after[name].written_ns != seen.written_ns for name, seen in before.items()),
    }


def run(
    bundle: str,
    workers: list[int],
    device: str,
    cuts_s: float,
    lessons: int,
    lesson_s: float,
    out: Path,
    shard_size: int = 1,
) -> dict:
    folder, made_s = ensure_bundle(Path(bundle)) if device != "cpu" else (Path(bundle), None)
    work = out.parent
    long_audio, lesson_audio = work / "cuts-lesson.wav", work / "chain-lesson.wav"
    write_lesson(long_audio, cuts_s)
    write_lesson(lesson_audio, lesson_s)
    cuts = write_manifest(work / "cuts.yaml", long_audio, 1, "cuts", device)
    chains = write_manifest(work / "continuous.yaml", lesson_audio, lessons, "continuous", device)
    report: dict = {
        "device": device,
        "shard_size": shard_size,
        "bundle_written_s": made_s,
        "cuts": [],
        "continuous": [],
    }
    for n in workers:
        report["cuts"].append(render(cuts, work / f"cuts-{n}", n, folder.resolve(), device, shard_size))
        chain_run = work / f"continuous-{n}"
        report["continuous"].append(render(chains, chain_run, n, folder.resolve(), device, shard_size))
        print(json.dumps({"cuts": report["cuts"][-1], "continuous": report["continuous"][-1]}), flush=True)
    killed_run = work / f"killed-{workers[-1]}"
    report["killed"] = render(chains, killed_run, workers[-1], folder.resolve(), device, shard_size, kill=True)
    base_cuts, base_chains = report["cuts"][0], report["continuous"][0]
    for row in report["cuts"]:
        row["speed_up"] = base_cuts["render_span_s"] / row["render_span_s"]
    for row in report["continuous"]:
        row["lessons_per_hour"] = 3600 * row["ok_items"] / row["render_span_s"]
        factor = row["workers"] / base_chains["workers"]
        row["efficiency"] = row["lessons_per_hour"] / (
            factor * 3600 * base_chains["ok_items"] / base_chains["render_span_s"]
        )
    return report
