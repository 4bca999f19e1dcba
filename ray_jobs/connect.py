"""The driver's Ray: the cluster at ``--address`` (or ``RAY_ADDRESS``, as ``ray job submit`` sets it), else a
local Ray of its own (``ray_jobs.local_ray``).

Ray's own failures mislead a person: an address where nothing listens hangs for minutes, and a cluster that
refuses this driver's authentication token is reported as "most likely due to a previous Ray instance that has
since crashed". So a plain ``HOST:PORT`` is first knocked on with a TCP connection (seconds), and a cluster that
answers but does not let the driver in is said to be an authentication mismatch, each in one sentence.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable

KNOCK_SECONDS = 5.0


class ClusterError(RuntimeError):
    """The driver cannot join the Ray cluster it was pointed at; the message says why and what to do."""


def connect(address: str | None, local_cpus: int | None, on_stop: Callable[[int, object], None]) -> None:
    """Join the cluster at ``address`` (default ``RAY_ADDRESS``), else start a local Ray with ``local_cpus``;
    then ``on_stop`` handles SIGTERM (``ray job stop``), set after ``ray.init``, whose own handler prints a stack
    dump."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        if local_cpus:
            raise ClusterError(
                f"--local-cpus sizes a Ray this command starts, but it joins the cluster at {address} "
                "(--address or RAY_ADDRESS), which has CPUs of its own: leave out --local-cpus, or unset "
                "RAY_ADDRESS to render on a local Ray."
            )
        _knock(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise ClusterError(
                f"the Ray cluster at {address} answers but did not let this driver in ({e}); most often its "
                "authentication differs: a cluster started with token authentication needs its token here "
                "(RAY_AUTH_TOKEN or ~/.ray/auth_token), and one started with RAY_AUTH_MODE=disabled needs "
                "RAY_AUTH_MODE=disabled here too."
            ) from None
    else:
        from ray_jobs import local_ray

        local_ray.start(local_cpus)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_stop)


def _knock(address: str) -> None:
    """A TCP connection to a plain ``HOST:PORT`` (not ``auto`` or ``ray://``), so nothing there is said at once."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=KNOCK_SECONDS):
            return
    except OSError as e:
        reason = e.strerror or type(e).__name__
    raise ClusterError(
        f"no Ray cluster answers at {address} ({reason}): start one there with `ray start --head --port {port}`, "
        "or give the address of a running one with --address HOST:PORT (or RAY_ADDRESS)."
    )
