"""Long items through the Ray driver on the tiny bundle: a chain whose worker is killed resumes from its last
finished window (only the missing windows render), and the windows of a ``cuts`` item spread over two
workers and are joined into one mp4; before them, the driver's bookkeeping of a ``cuts`` item without Ray."""

from __future__ import annotations

import io
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import yaml
from conftest import LESSON, render_actor_pids, report_cards, write_tone
from test_ray_driver import FAST

from ltxcore.mp4 import probe_mp4
from manifests.load import load_manifest
from ray_jobs.cli import status_lines
from ray_jobs.messages import ItemDone, WindowDone
from ray_jobs.progress import Progress
from ray_jobs.render import main
from ray_jobs.report import build_report
from ray_jobs.scheduler import WorkQueue
from ray_jobs.shards import Shard
from runstore.plan import JoinWindows, RenderWindow, plan
from runstore.results import read_results
from runstore.run_folder import RunFolder
from runstore.window_store import units_of_work

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


def _cuts_queue(tmp_path: Path) -> tuple[WorkQueue, list[Shard]]:
    """A ``cuts`` item of three windows as its units of work, its first window in a shard of its own."""
    [planned] = plan(load_manifest(_manifest(tmp_path, 4.0, "cuts")))
    units = units_of_work([planned], RunFolder(str(tmp_path / "run")))
    assert [u.part for u in units] == [RenderWindow(0), RenderWindow(1), RenderWindow(2)]
    shards = [Shard(0, tuple(units[:1])), Shard(1, tuple(units[1:]))]
    progress = Progress(total=1, stream=io.StringIO(), windows={"lesson": 3})
    return WorkQueue(shards, str(tmp_path / "results"), "run-1", "s1", progress), shards


def test_a_cuts_item_is_joined_once_every_shard_of_its_windows_has_returned(tmp_path):
    """A window told (as rendered) moves the progress line; its shard's return (the window then in the run
    folder) counts it towards the join, which goes first on the queue, once."""
    work, shards = _cuts_queue(tmp_path)
    work.told(WindowDone("lesson", 0, "h", 1.4))
    assert work.progress.windows_done == 1 and len(work) == 2  # told: no join yet
    work.returned(shards[0], [])
    work.returned(shards[1], [])
    work.returned(shards[1], [])  # returned twice: still one join
    assert len(work) == 3
    join = work.take()
    assert join is not None and [p.part for p in join.items] == [JoinWindows()]


def test_a_cuts_item_whose_window_failed_is_not_joined(tmp_path):
    work, shards = _cuts_queue(tmp_path)
    failed = ItemDone("lesson", "failed", "h", 1, error="audio: cannot be decoded")
    work.told(failed)
    work.returned(shards[0], [failed])
    work.returned(shards[1], [])
    assert len(work) == 2 and work.progress.failed == 1  # the two shards handed out at first, no join


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
    [card] = report_cards(build_report(str(run)).read_text())  # the report's strip: each window's span and worker
    strip = card["timeline"]["windows"]
    speech = ", starts inside speech"  # a steady tone: no pause to cut in
    assert [w["label"] for w in strip] == [
        "0.00–1.38 s, frames 0–32",
        f"1.38–2.71 s, frames 33–64{speech}",
        f"2.71–4.00 s, frames 65–95{speech}",
    ]
    assert {w["by"].split(" in ")[0] for w in strip} == {f"rendered by {w['rendered_by']}" for w in windows}
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
