"""A full disk is the run's fault, not the items': the run stops at the first one with one line, keeps what
finished, and resumes once there is space again."""

from __future__ import annotations

import errno
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import LESSON, SHORT_RENDER

from ray_jobs.render import EXIT_RUN_FAULT, main
from runstore.results import read_results
from runstore.run_faults import run_fault


def test_a_full_or_read_only_disk_is_the_runs_fault_and_an_items_own_error_is_not():
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/videos/.a.mp4.123.partial")
    assert run_fault(full) == "no space is left on the device under /runs/x/videos"
    wrapped = RuntimeError(
        "OSError: [Errno 28] No space left on device: '/runs/x/windows/l/.window-0000.mp4.9.partial'"
    )
    assert run_fault(wrapped) == "no space is left on the device under /runs/x/windows/l"  # from the mux child
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/runs/x/results/a.parquet")
        except OSError as e:
            raise ValueError("writing the row failed") from e
    except ValueError as chained:
        assert run_fault(chained) == "the file system is read-only under /runs/x/results"
    assert run_fault(OSError(errno.ENOENT, "No such file", "/media/gone.wav")) is None
    assert run_fault(RuntimeError("audio: could not be decoded: /media/x.wav")) is None


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_resume_finishes(small_disk, local_ray, tiny_bundle, capsys):
    items = [{"id": f"clip-{i}", "audio": str(LESSON / "en.ogg")} for i in range(6)]
    body = {"defaults": {"prompt": "A presenter", "image": str(LESSON / "presenter.png")}, "items": items}
    manifest = small_disk.parent / "m.yaml"
    manifest.write_text(yaml.safe_dump(body))
    run = small_disk / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(manifest), "--out", str(run), "--bundle", bundle, *SHORT_RENDER, "--shard-size", "1"]
    result: dict = {}
    driver = threading.Thread(target=lambda: result.setdefault("code", main(args)), daemon=True)
    driver.start()
    deadline = time.monotonic() + 300
    while not ((run / "results").is_dir() and len(read_results(str(run / "results")))):
        assert time.monotonic() < deadline and driver.is_alive(), "no item finished"
        time.sleep(0.1)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # the disk fills up: what is left of the run has nowhere to go
        try:
            while True:
                f.write(b"\0" * (1 << 16))
        except OSError:
            pass
    driver.join(300)
    assert result.get("code") == EXIT_RUN_FAULT
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith("error: the run stopped: no space is left on the device under ")
    assert err[0].endswith(f"free the disk, then: ltx-batch resume {run}")
    finished = {r["item_id"] for r in read_results(str(run / "results")).to_pylist() if r["status"] == "ok"}
    assert finished and not [r for r in read_results(str(run / "results")).to_pylist() if r["status"] != "ok"]
    filler.unlink()
    shutil.rmtree(run / "report", ignore_errors=True)
    assert main(["--resume", str(run)]) == 0
    rows = read_results(str(run / "results")).to_pylist()
    assert sorted(r["item_id"] for r in rows if r["status"] == "ok") == [f"clip-{i}" for i in range(6)]
