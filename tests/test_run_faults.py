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
    def what(error: BaseException) -> str | None:
        fault = run_fault(error, "/runs/x")
        return None if fault is None else fault.what

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/videos/.a.mp4.123.partial")
    assert what(full) == "no space is left on the device under /runs/x/videos"
    wrapped = RuntimeError(
        "OSError: [Errno 28] No space left on device: '/runs/x/windows/l/.window-0000.mp4.9.partial'"
    )
    assert what(wrapped) == "no space is left on the device under /runs/x/windows/l"  # from the mux child
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/runs/x/results/a.parquet")
        except OSError as e:
            raise ValueError("writing the row failed") from e
    except ValueError as chained:
        assert what(chained) == "the file system is read-only under /runs/x/results"
        assert (
            run_fault(chained, "/runs/x").line("/runs/x").endswith("make it writable, then: ltx-batch resume /runs/x")
        )
    assert what(OSError(errno.ENOENT, "No such file", "/media/gone.wav")) is None
    assert what(RuntimeError("audio: could not be decoded: /media/x.wav")) is None


def test_credentials_object_storage_refuses_are_the_runs_fault(tmp_path):
    """The errors of a real S3 server (moto, checking credentials) that no longer knows the run's key: any
    refusal of who we are stops the run; a key refused outside the run folder is the item's own input."""
    import os
    import socket
    import sys

    import pyarrow.fs as pafs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")  # every request's key is checked
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.2)
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="gone",
            secret_key="gone",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        with pytest.raises(OSError) as written, fs.open_output_stream("studio/runs/r1/videos/a.mp4") as out:
            out.write(b"x")
        with pytest.raises(OSError) as read:
            fs.open_input_stream("studio/media/a.wav").read()
    finally:
        server.kill()
    fault = run_fault(written.value, "s3://studio/runs/r1")
    assert fault is not None and fault.what.startswith("object storage refused the run's credentials")
    assert fault.line("s3://studio/runs/r1").endswith("then: ltx-batch resume s3://studio/runs/r1")
    denied = read.value  # HeadObject: "AWS Error ACCESS_DENIED" for a key of the bucket
    assert "ACCESS_DENIED" in str(denied)
    assert run_fault(denied, "s3://studio/runs/r1") is None  # an input the item may not read: the item's fault
    assert run_fault(denied, "s3://studio/media") is not None  # under the run folder: the run's


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


def _driver_after_its_first_item(manifest: Path, run: Path, tiny_bundle) -> tuple[threading.Thread, dict]:
    """A driver rendering six short items into ``run``, one per shard, once its first item is done; ``result``
    gets its exit code."""
    items = [{"id": f"clip-{i}", "audio": str(LESSON / "en.ogg")} for i in range(6)]
    body = {"defaults": {"prompt": "A presenter", "image": str(LESSON / "presenter.png")}, "items": items}
    manifest.write_text(yaml.safe_dump(body))
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(manifest), "--out", str(run), "--bundle", bundle, *SHORT_RENDER, "--shard-size", "1"]
    result: dict = {}
    driver = threading.Thread(target=lambda: result.setdefault("code", main(args)), daemon=True)
    driver.start()
    deadline = time.monotonic() + 300
    while not ((run / "results").is_dir() and len(read_results(str(run / "results")))):
        assert time.monotonic() < deadline and driver.is_alive(), "no item finished"
        time.sleep(0.1)
    return driver, result


def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_resume_finishes(small_disk, local_ray, tiny_bundle, capsys):
    run = small_disk / "run"
    driver, result = _driver_after_its_first_item(small_disk.parent / "m.yaml", run, tiny_bundle)
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


def test_a_run_folder_removed_mid_run_stops_it_in_one_line_and_is_not_made_again(
    local_ray, tiny_bundle, tmp_path, capsys
):
    run = tmp_path / "run"
    driver, result = _driver_after_its_first_item(tmp_path / "m.yaml", run, tiny_bundle)
    shutil.rmtree(run)  # the folder is deleted (or its disk unmounted) while the run renders
    driver.join(300)
    assert result.get("code") == EXIT_RUN_FAULT
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert err == [
        f"error: the run stopped: the run folder {run} is gone (removed or unmounted while the run rendered). "
        f"Restore it, then: ltx-batch resume {run}; or render again into a new --out"
    ]
    assert not run.exists()  # no failed rows, no report: nothing wrote the folder anew
