"""The cluster path as documented: ``--address`` (or ``RAY_ADDRESS``) to a real ``ray start --head`` on loopback,
and each way of not getting in said in one line, soon, without a traceback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import LESSON, REPO

RENDER = [sys.executable, "-m", "ray_jobs.render", str(LESSON / "lesson.yaml")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    command = [*RENDER, "--out", str(tmp_path / "run"), "--bundle", str(tmp_path / "no-bundle"), *args]
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environment.pop("RAY_ADDRESS", None)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=environment)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_an_address_where_no_cluster_listens_is_said_at_once(tmp_path):
    port = _free_port()
    started = time.monotonic()
    done = _render(tmp_path, "--address", f"127.0.0.1:{port}")
    assert done.returncode == 3 and time.monotonic() - started < 60
    line = _one_error_line(done)
    assert line.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")
    assert f"ray start --head --port {port}" in line
    assert not (tmp_path / "run").exists()


@pytest.fixture
def head():
    """A real head node on loopback with token authentication, stopped (its processes only) afterwards. Its
    folder is short: Ray's sockets live there, and a socket's path has at most 107 characters."""
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port", str(port)]
    command += ["--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats"]
    command += ["--temp-dir", folder]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 32}
    process = subprocess.Popen(
        command, start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        assert time.monotonic() < deadline and process.poll() is None, "the head node did not start"
        time.sleep(0.5)
    yield f"127.0.0.1:{port}"
    for child in psutil.Process(process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_cluster_that_refuses_the_drivers_token_and_local_cpus_with_a_cluster_are_each_one_line(head, tmp_path):
    local = _render(tmp_path, "--address", head, "--local-cpus", "2")
    assert local.returncode == 3
    assert "--local-cpus sizes a Ray this command starts, but it joins the cluster at" in _one_error_line(local)
    refused = _render(tmp_path, "--address", head, RAY_AUTH_MODE="disabled")
    assert refused.returncode == 3
    line = _one_error_line(refused)
    assert line.startswith(f"error: the Ray cluster at {head} answers but did not let this driver in")
    assert "RAY_AUTH_MODE=disabled" in line and "previous Ray instance" not in line
