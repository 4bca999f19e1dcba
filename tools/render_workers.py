"""Finding the render workers a process started, for the tests and benchmarks that kill one."""

from __future__ import annotations

import psutil


def render_actor_pids(ancestor: int) -> list[int]:
    """The render actors (``ray::RenderActor`` processes) descended from ``ancestor``, a driver or a test process
    whose local Ray they belong to: never another run's or another test worker's on the same machine."""
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        if "ray::RenderActor" not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            if any(parent.pid == ancestor for parent in process.parents()):
                pids.append(process.pid)
        except psutil.NoSuchProcess:
            continue
    return pids
