"""The Ray driver end to end on a local Ray with 2 CPUs and the tiny bundle."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import LESSON, QUICK_FLAGS, REPO, render_actor_pids, report_cards

from ltxcore.mp4 import probe_mp4
from manifests.load import load_manifest
from manifests.validate import validate
from ray_jobs.cli import status_lines
from ray_jobs.render import main
from ray_jobs.report import build_report
from runstore.results import read_results

FAST = QUICK_FLAGS  # clip lengths as written


def _manifest(
    tmp_path: Path, n: int, seconds: float = 1.0, corrupt: int | None = None, not_audio: int | None = None
) -> Path:
    items = []
    for i in range(n):
        audio = str(LESSON / ("en.ogg", "de.mp3", "es.m4a")[i % 3])
        if i == corrupt:
            data = (LESSON / "de.mp3").read_bytes()
            audio = str(tmp_path / "corrupt.mp3")
            Path(audio).write_bytes(data[:1000] + bytes((i * 37) % 256 for i in range(len(data) - 1000)))
        if i == not_audio:
            audio = str(tmp_path / "voice.ogg")
            Path(audio).write_text("a transcript saved under an audio file's name\n")
        items.append({"id": f"clip-{i:02d}", "audio": audio, "tags": {"n": str(i)}})
    body = {
        "run_seed": 1,
        "defaults": {"prompt": "A presenter", "audio_max_duration": seconds, "image": str(LESSON / "presenter.png")},
        "items": items,
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _ok_counts(run: Path) -> Counter:
    table = read_results(str(run / "results")).to_pylist()
    return Counter(r["item_id"] for r in table if r["status"] == "ok")


def test_skip_invalid_renders_the_rest_then_resume_renders_the_fixed_item_only(
    local_ray, tiny_bundle, tmp_path, capsys
):
    """Five items over several shards, one of them a file that is not audio: without --skip-invalid nothing
    renders; with it the four others render and the fifth gets an InvalidInput row with validate's message.
    After the file is replaced, --resume renders that one item, and a second --resume renders nothing."""
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    manifest = _manifest(tmp_path, 5, not_audio=3)
    args = [str(manifest), "--out", str(run), "--bundle", bundle, "--shard-size", "2", "--actors", "1", *FAST]
    assert main(args) == 2 and not run.exists()  # the default: refused up front
    assert "1 problem(s) in 5 items" in capsys.readouterr().err
    assert main([*args, "--skip-invalid"]) == 1
    rows = {r["item_id"]: r for r in read_results(str(run / "results")).to_pylist()}
    assert _ok_counts(run) == {f"clip-{i:02d}": 1 for i in (0, 1, 2, 4)}
    for i in (0, 1, 2, 4):
        probe = probe_mp4(run / "videos" / f"clip-{i:02d}.mp4")
        assert (probe.frames, probe.width, probe.height) == (24, 192, 128)  # 1 s of audio at 24 fps: 24 frames
    [expected] = [str(p) for p in validate(load_manifest(manifest)) if "clip-03" in p.where]
    bad = rows["clip-03"]
    assert (bad["status"], bad["error_type"], bad["error_message"]) == ("failed", "InvalidInput", expected)
    assert expected.startswith("item 'clip-03' (line ") and "field 'audio'" in expected
    assert bad["audio"] == str(tmp_path / "voice.ogg") and bad["prompt"] == "A presenter" and bad["seed"] is None
    assert bad["tags"] == [("n", "3")] and bad["fingerprint"] is None
    out = capsys.readouterr().out
    assert "4 ok, 1 not ok, 5 items in the run\n  failed clip-03: InvalidInput: item 'clip-03'" in out
    assert '"status": "ok"' in out and "clips/h" in out
    assert (run / "submitted" / "manifest.yaml").is_file() and (run / "plan.parquet").is_file()
    assert status_lines(str(run))[0].endswith("5 items, 4 ok, 1 failed (1 with invalid input), 0 not rendered yet")
    first = report_cards(build_report(str(run)).read_text())[0]  # the invalid items' cards come first
    assert first["id"] == "clip-03" and first["error"].startswith("InvalidInput: item ")

    shutil.copy(LESSON / "en.ogg", tmp_path / "voice.ogg")
    resume_started = datetime.now(UTC)
    assert main(["--resume", str(run)]) == 0
    ok = [r for r in read_results(str(run / "results")).to_pylist() if r["status"] == "ok"]
    assert Counter(r["item_id"] for r in ok) == {f"clip-{i:02d}": 1 for i in range(5)}
    assert [r["item_id"] for r in ok if r["started_at"] >= resume_started] == ["clip-03"]
    assert "1 item(s) set aside as invalid now pass validation" in capsys.readouterr().out

    rows_before = len(read_results(str(run / "results")))
    assert main(["--resume", str(run)]) == 0
    assert len(read_results(str(run / "results"))) == rows_before
    assert "nothing to render" in capsys.readouterr().out


def test_workers_load_while_the_manifest_is_validated_and_go_when_it_is_refused(
    local_ray, tiny_bundle, tmp_path, capsys, monkeypatch
):
    """The render worker starts loading before validation is done (its process is there while the manifest is
    checked, before any plan is written); a manifest with an invalid item is then refused as before, with the
    same message and exit code, no folder left, and the worker's process gone."""
    from ray_jobs import submission

    run, seen = tmp_path / "run", {}

    def slow_check(*args, **kwargs):  # validation that lasts until a worker's process shows (at most 120 s)
        deadline = time.monotonic() + 120
        while not render_actor_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen.update(workers=render_actor_pids(), planned=(run / "plan.parquet").exists())
        return check(*args, **kwargs)

    check = submission.check
    monkeypatch.setattr(submission, "check", slow_check)
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    manifest = _manifest(tmp_path, 2, not_audio=1)
    assert main([str(manifest), "--out", str(run), "--bundle", bundle, "--actors", "1", *FAST]) == 2
    assert "1 problem(s) in 2 items" in capsys.readouterr().err and not run.exists()
    assert len(seen["workers"]) == 1 and not seen["planned"]
    deadline = time.monotonic() + 30
    while set(seen["workers"]) & set(render_actor_pids()):
        assert time.monotonic() < deadline, "the refused run's worker is still alive 30 s later"
        time.sleep(0.2)


def test_actor_killed_mid_run_every_item_ok_exactly_once(local_ray, tiny_bundle, tmp_path):
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(_manifest(tmp_path, 8, seconds=2.0)), "--out", str(run), "--bundle", bundle, "--shard-size", "4", *FAST]
    result = {}
    driver = threading.Thread(target=lambda: result.setdefault("code", main(args)), daemon=True)
    driver.start()
    # a wait for the first row, not a speed check: on CI's two cores two test workers share them with Ray
    deadline = time.monotonic() + 600
    while not ((run / "results").is_dir() and _ok_counts(run)):
        assert time.monotonic() < deadline and driver.is_alive(), "no item finished within 600 s"
        time.sleep(0.2)
    victims = render_actor_pids()
    assert victims, "no render worker process found"
    os.kill(victims[0], signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive(), "the run did not finish within 300 s of losing a worker"
    assert result["code"] == 0
    assert _ok_counts(run) == {f"clip-{i:02d}": 1 for i in range(8)}
    assert not [p for p in (run / "videos").iterdir() if p.name.startswith(".")]


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
    return out


def test_driver_killed_leaves_no_ray_behind_and_resume_renders_only_missing(tiny_bundle, tmp_path):
    """SIGKILL of the driver alone: within seconds no process of its local Ray is left (the raylet's agents
    would otherwise linger for a minute or more); then --resume renders only what was missing."""
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    manifest = _manifest(tmp_path, 6)
    command = [
        sys.executable,
        "-m",
        "ray_jobs.render",
        str(manifest),
        "--out",
        str(run),
        "--bundle",
        bundle,
        "--shard-size",
        "1",
        "--actors",
        "1",
        "--local-cpus",
        "2",
        *FAST,
    ]
    driver = subprocess.Popen(
        command,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    local_ray = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and sum(_ok_counts(run).values() if (run / "results").is_dir() else []) < 2:
            time.sleep(0.2)
        local_ray = psutil.Process(driver.pid).children(recursive=True)  # its Ray, and the watchdog of that Ray
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as `kill -9 PID` does
        driver.wait()
    deadline = time.monotonic() + 15
    while _alive(local_ray) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(local_ray)
    for process in left:  # not left to the tests after this one
        process.kill()
    assert local_ray and not left, f"left behind: {[(p.pid, p.name()) for p in left]}"
    before = {r["item_id"] for r in read_results(str(run / "results")).to_pylist() if r["status"] == "ok"}
    assert len(before) >= 2
    resume_started = datetime.now(UTC)
    resumed = subprocess.run(
        [sys.executable, "-m", "ray_jobs.render", "--resume", str(run), "--local-cpus", "2", "--actors", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ok = [r for r in read_results(str(run / "results")).to_pylist() if r["status"] == "ok"]
    assert Counter(r["item_id"] for r in ok) == {f"clip-{i:02d}": 1 for i in range(6)}
    rendered_by_resume = {r["item_id"] for r in ok if r["started_at"] >= resume_started}
    assert rendered_by_resume and not rendered_by_resume & before  # only what was missing
    assert f"{len(rendered_by_resume)} of 6 items to render" in resumed.stdout


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "ray-job-stop"])
def test_an_interrupted_driver_says_one_line_and_its_run_resumes(stop, local_ray, tiny_bundle, tmp_path, capsys):
    """Ctrl-C (SIGINT to the terminal's process group) or ``ray job stop`` (SIGTERM) once an item is done: no
    traceback, one line saying what was kept and how to go on, and the run resumes to every item once."""
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    command = [sys.executable, "-m", "ray_jobs.render", str(_manifest(tmp_path, 3, seconds=0.3)), "--out", str(run)]
    command += ["--bundle", bundle, "--shard-size", "1", "--actors", "1", "--local-cpus", "2", *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(command, cwd=REPO, start_new_session=True, text=True, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not ((run / "results").is_dir() and _ok_counts(run)) and driver.poll() is None:
        assert time.monotonic() < deadline, "no item finished within 180 s"
        time.sleep(0.2)
    os.killpg(driver.pid, stop)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "Traceback" not in err, err
    said = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(said) == 1 and said[0].endswith(f"go on with: ltx-batch resume {run}"), err
    assert main(["--resume", str(run)]) == 0
    assert _ok_counts(run) == {f"clip-{i:02d}": 1 for i in range(3)}


def test_no_worker_can_start_stops_the_run_with_a_clear_error(local_ray, tiny_bundle, tmp_path, capsys):
    """Headers pass the driver's bundle check, but the weights don't fit: every worker fails in __init__."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = tmp_path / "bundle"
    shutil.copytree(Path(tiny_bundle.checkpoint_path).parent, folder)
    checkpoint = folder / Path(tiny_bundle.checkpoint_path).name
    with safe_open(str(checkpoint), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if "transformer_blocks.0.ff" not in k}
    save_file(tensors, str(checkpoint), metadata=metadata)
    args = [str(_manifest(tmp_path, 2)), "--out", str(tmp_path / "run"), "--bundle", str(folder), *FAST]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "no render worker could start" in err and "missing weights for the transformer" in err


def test_workers_warm_up_once_per_graph_set_at_its_most_rendered_length():
    from manifests.load import load_manifest
    from ray_jobs.render import warm_requests
    from runstore.plan import plan

    planned = plan(load_manifest("manifests/examples/lesson/lesson.yaml"))  # three recordings, three lengths
    # 7.25 s and 7.69 s of audio at 25 fps show 182 and 193 frames, rendered as 185 and 193; es's 6 s window 150,
    # as 153: one size and pipeline, so one warm-up, at the first of the lengths rendered most
    assert [(p.item.num_frames, p.window_plan[0].rendered) for p in planned] == [(182, 185), (193, 193), (150, 153)]
    requests = warm_requests(planned)
    assert [(r.num_frames, r.height, r.width) for r in requests] == [(185, 512, 768)]
    assert all(r.guider.cfg_scale == 3.0 and r.frame_rate == 25 for r in requests)


def test_quantization_identity_names_the_fp8_policy():
    from ltxcore.fp8 import BF16_EDGE_BLOCKS
    from manifests.model_section import quantization_identity

    assert quantization_identity("fp8-scaled") == {
        "quantization": "fp8-scaled",
        "fp8_bf16_edge_blocks": BF16_EDGE_BLOCKS,
    }
    assert quantization_identity("fp8-cast") == {"quantization": "fp8-cast"}
