"""Long items through the Ray driver on the tiny bundle: a chain whose worker is killed resumes from its last
finished window (only the missing windows render), and the windows of a ``cuts`` item spread over two
workers and are joined into one mp4."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import yaml
from conftest import LESSON, render_actor_pids, write_tone
from test_ray_driver import FAST

from ltxcore.mp4 import probe_mp4
from ray_jobs.cli import status_lines
from ray_jobs.render import main
from runstore.results import read_results

FPS = 24.0


def _manifest(tmp_path: Path, seconds: float, long_form: str) -> Path:
    audio = write_tone(tmp_path / "lesson.wav", seconds)
    body = {
        "run_seed": 3,
        "defaults": {"prompt": "A presenter", "image": str(LESSON / "presenter.png"), "frame_rate": FPS},
        "items": [{"id": "lesson", "audio": audio, "window_seconds": 1.5, "context_frames": 1, "long_form": long_form}],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _records(run: Path) -> dict[str, int]:
    """Window record file -> its mtime: a record is written once, when its window is whole."""
    return {p.name: p.stat().st_mtime_ns for p in run.glob("windows/lesson-*/window-*.json")}


def _ok_row(run: Path) -> dict:
    [row] = [r for r in read_results(str(run / "results")).to_pylist() if r["status"] == "ok"]
    return row


def _worker_pid() -> int | None:
    pids = render_actor_pids()
    return pids[0] if pids else None


def test_a_chain_whose_worker_dies_resumes_from_its_last_finished_window(local_ray, tiny_bundle, tmp_path):
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(_manifest(tmp_path, 4.0, "continuous")), "--out", str(run), "--bundle", bundle, *FAST]
    args += ["--actors", "1"]
    result: dict = {}
    driver = threading.Thread(target=lambda: result.setdefault("code", main(args)), daemon=True)
    driver.start()
    deadline = time.monotonic() + 300
    while not _records(run):
        assert time.monotonic() < deadline and driver.is_alive(), "no window finished"
        time.sleep(0.05)
    pid = _worker_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    before = _records(run)
    driver.join(600)
    assert result.get("code") == 0
    after = _records(run)
    assert {name: after[name] for name in before} == before  # finished windows were not rendered again
    row = _ok_row(run)
    assert [w["index"] for w in row["windows"]] == list(range(len(after))) and len(after) == 3  # 96: 33+32+31
    assert len(after) > len(before)  # the rest rendered after the kill, on the restarted worker
    assert probe_mp4(run / "videos" / "lesson.mp4").frames == 96  # 4 s at 24 fps: the whole audio


def test_cuts_windows_spread_over_two_workers_and_join_into_one_mp4(local_ray, tiny_bundle, tmp_path):
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(_manifest(tmp_path, 4.0, "cuts")), "--out", str(run), "--bundle", bundle, *FAST]
    assert main([*args, "--actors", "2", "--cpus-per-actor", "1", "--shard-size", "1"]) == 0
    row = _ok_row(run)
    windows = row["windows"]
    # 1.5 s windows at 24 fps render at most 33 frames: 33 shown, then 32 after 1 context or 1 extra frame, then
    # what is left of the 96 that cover the audio, 31
    assert [(w["start_frame"], w["num_frames"]) for w in windows] == [(0, 33), (33, 32), (65, 31)]
    assert len({w["rendered_by"] for w in windows}) == 2  # two workers rendered them
    assert probe_mp4(run / "videos" / "lesson.mp4").frames == 96
    # as a driver killed before the join leaves it: every window on disk, no row; status says so, and a resume
    # joins them without rendering any again
    shutil.rmtree(run / "results")
    (run / "videos" / "lesson.mp4").unlink()
    lines = status_lines(str(run))
    assert lines[0].endswith("1 items, 0 ok, 0 failed, 1 not rendered yet")
    assert lines[1] == "  1 of them partly rendered (windows finished, kept for the resume): lesson 3/3"
    before = _records(run)
    assert main(["--resume", str(run)]) == 0
    assert _records(run) == before and probe_mp4(run / "videos" / "lesson.mp4").frames == 96
