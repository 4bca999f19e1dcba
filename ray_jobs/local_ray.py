"""A local Ray that goes when its driver goes.

Run directly (not under ``ray job submit``), the driver starts a Ray of its own. Killed with SIGKILL, it takes
the GCS and the raylet with it (Ray binds them to their parent), but the raylet's agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) see the raylet die and then hang on their way out, for a
minute or more, as orphans. So the driver starts a watchdog, in a session of its own (a kill of the driver's
process group or a Ctrl-C does not reach it), that holds the read end of a pipe from the driver. When the
driver ends, however it ends, the pipe closes, and the watchdog kills what is left of that Ray session: every
Ray process holding a file in the session's folder. ``python -m ray_jobs.local_ray SESSION_DIR RAY_DIR`` is
the watchdog.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import psutil

KILL_ROUNDS = 10  # a process that was starting while the others were killed is caught in a later round

_watchdogs: list[subprocess.Popen] = []  # holding the Popen keeps the pipe's write end open while we live


def start(num_cpus: int | None) -> None:
    """``ray.init`` a local Ray, and the watchdog that stops it when this process ends."""
    import ray

    context = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    ray_dir = os.path.dirname(ray.__file__)
    command = [sys.executable, "-m", "ray_jobs.local_ray", session_dir(context), ray_dir]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _watchdogs.append(
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=root,
        )
    )


def session_dir(context: object) -> str:
    """The session folder of the Ray that ``ray.init`` started (a ``RayContext`` when it starts one)."""
    return context.address_info["session_dir"]  # pyright: ignore[reportAttributeAccessIssue]


def _is_ray(cmdline: list[str], ray_dir: str) -> bool:
    """A Ray process: a worker or agent (its title is ``ray::...``), or a program or script of the ray package."""
    return bool(cmdline) and (cmdline[0].startswith("ray::") or any(arg.startswith(ray_dir) for arg in cmdline))


def leftovers(session_dir: str, ray_dir: str) -> list[psutil.Process]:
    """The Ray processes (other than this one) that hold a file of ``session_dir``: its logs, its sockets."""
    prefix = session_dir.rstrip("/") + "/"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.pid == os.getpid() or not _is_ray(process.info["cmdline"] or [], ray_dir):
                continue
            if any(f.path.startswith(prefix) for f in process.open_files()):
                found.append(process)
    return found


def watch(session_dir: str, ray_dir: str) -> None:
    """Wait for the driver to end (the end of our standard input), then kill its Ray session's processes."""
    sys.stdin.buffer.read()
    for _ in range(KILL_ROUNDS):
        processes = leftovers(session_dir, ray_dir)
        if not processes:
            return
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(processes, timeout=1)


if __name__ == "__main__":
    watch(*sys.argv[1:3])
