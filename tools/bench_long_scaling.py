"""Long lessons over several workers through the Ray driver: ``python -m tools.bench long-scaling``.

    python -m tools.bench long-scaling --bundle DIR --workers 1 4 --out long.json               # GPUs
    python -m tools.bench long-scaling --bundle TINY --device cpu --workers 1 2 --out long.json  # CPU workers

Three runs per worker count N, each the real command (``python -m ray_jobs.render MANIFEST --out RUN --actors N
--shard-size 1``) on a local Ray, each a fresh run folder:

- ``cuts``: one lesson of ``--cuts-seconds`` whose windows are independent, so they spread over the N workers:
  its wall from the first window's start to its joined mp4 (window records: finish time and render seconds),
  against the same item on the fewest workers.
- ``continuous``: ``--lessons`` lessons of ``--lesson-seconds``, each a chain on one worker while the others
  render the other chains: lessons per hour over the rendering window (first started to last finished).
- ``killed`` (at the largest N): the continuous batch again, one worker SIGKILLed once the first window is
  whole; every lesson must still come out ``ok`` once, and no finished window may render again (its record
  keeps its first write): the item resumes from its last finished window.

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

import psutil
import yaml

from runstore.results import read_results
from tools.demo import set_flags
from tools.long_lesson import write_lesson
from tools.reference_clip import IMAGE, PROMPT, ensure_bundle, reference_defaults

REPO = Path(__file__).resolve().parents[1]
CPU_SETTINGS = set_flags(video_stg_blocks="[1]", num_inference_steps=2, height=128, width=192)


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


def window_records(run: Path) -> dict[str, tuple[int, float]]:
    """Window record file -> (its write time in ns, the window's render seconds); written once, when whole."""
    out = {}
    for path in run.glob("windows/*/window-*.json"):
        out[f"{path.parent.name}/{path.name}"] = (path.stat().st_mtime_ns, json.loads(path.read_text())["seconds"])
    return out


def render_workers(driver_pid: int) -> list[int]:
    """The render actors started under the driver process ``driver_pid`` (its local Ray's workers)."""
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        if "ray::RenderActor" not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            if any(parent.pid == driver_pid for parent in process.parents()):
                pids.append(process.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


def render(manifest: Path, run: Path, workers: int, bundle: Path, device: str, kill: bool = False) -> dict:
    """One run of the real command; with ``kill``, one worker is SIGKILLed once the first window is whole."""
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "ray_jobs.render", str(manifest), "--out", str(run), "--bundle", str(bundle)]
    command += ["--actors", str(workers), "--shard-size", "1", "--device", device]
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
    rows = read_results(str(run / "results")).to_pylist() if (run / "results").exists() else []
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise RuntimeError(f"nothing rendered with {workers} worker(s) (exit {code}); see {run.with_suffix('.log')}")
    records = window_records(run)
    first_start = min(mtime / 1e9 - seconds for mtime, seconds in records.values())
    last_end = max(r["finished_at"].timestamp() for r in ok)
    report = {
        "workers": workers,
        "exit_code": code,
        "items": len({r["item_id"] for r in rows}),
        "ok_rows": len(ok),
        "ok_items": len({r["item_id"] for r in ok}),
        "windows": len(records),
        "window_render_s_median": statistics.median(s for _, s in records.values()),
        "rendered_by": len({w["rendered_by"] for r in ok for w in r["windows"]}),
        "command_wall_s": wall,
        "render_span_s": last_end - first_start,
    }
    if kill:
        report["killed"] = killed
        before = killed.get("records", {})
        report["windows_rendered_again"] = sum(
            records.get(name, (None,))[0] != mtime for name, (mtime, _) in before.items()
        )
    return report


def _kill_after_first_window(run: Path, driver: subprocess.Popen, out: dict) -> None:
    while driver.poll() is None:
        records = window_records(run) if run.exists() else {}
        workers = render_workers(driver.pid)
        if records and workers:
            out["records"] = records
            out["pid"] = workers[0]
            out["windows_done_at_kill"] = len(records)
            psutil.Process(workers[0]).send_signal(signal.SIGKILL)
            return
        time.sleep(0.05)


def run(bundle: str, workers: list[int], device: str, cuts_s: float, lessons: int, lesson_s: float, out: Path) -> dict:
    folder, made_s = ensure_bundle(Path(bundle)) if device != "cpu" else (Path(bundle), None)
    work = out.parent
    long_audio, lesson_audio = work / "cuts-lesson.wav", work / "chain-lesson.wav"
    write_lesson(long_audio, cuts_s)
    write_lesson(lesson_audio, lesson_s)
    cuts = write_manifest(work / "cuts.yaml", long_audio, 1, "cuts", device)
    chains = write_manifest(work / "continuous.yaml", lesson_audio, lessons, "continuous", device)
    report: dict = {"device": device, "bundle_written_s": made_s, "cuts": [], "continuous": []}
    for n in workers:
        report["cuts"].append(render(cuts, work / f"cuts-{n}", n, folder.resolve(), device))
        report["continuous"].append(render(chains, work / f"continuous-{n}", n, folder.resolve(), device))
        print(json.dumps({"cuts": report["cuts"][-1], "continuous": report["continuous"][-1]}), flush=True)
    report["killed"] = render(chains, work / f"killed-{workers[-1]}", workers[-1], folder.resolve(), device, kill=True)
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
