"""Faults of the run, not of an item: the disk under the run folder (or the worker's scratch) is full, read-only or
over its quota. Every item after the first would fail the same way, each with a message naming its own file, so
a worker that meets one stops its shard, and the driver stops the run and says what and where once; what
finished is kept, and a resume goes on once the disk is fixed."""

from __future__ import annotations

import errno
import os
import re

RUN_ERRNOS = {
    errno.ENOSPC: "no space is left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
}
# an OSError that crossed a process as text (the mux child's RuntimeError: "OSError: [Errno 28] ...: 'PATH'")
_TEXT = re.compile(r"\[Errno (\d+)\][^']*(?:'([^']+)')?")


class RunFault(RuntimeError):
    """A worker met a fault of the run (``run_fault``); the message says what and where."""


def run_fault(error: BaseException) -> str | None:
    """What is wrong with the disk, and under which folder, when ``error`` (or what caused it) is a fault of
    the run; None for an item's own fault."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in RUN_ERRNOS:
            return _said(seen.errno, seen.filename)
        if (found := _TEXT.search(str(seen))) and int(found.group(1)) in RUN_ERRNOS:
            return _said(int(found.group(1)), found.group(2))
        seen = seen.__cause__ or seen.__context__
    return None


def _said(number: int, filename: object) -> str:
    where = f" under {os.path.dirname(str(filename))}" if filename else ""
    return f"{RUN_ERRNOS[number]}{where}"
