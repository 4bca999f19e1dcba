"""Faults of the run, not of an item: the disk under the run folder (or the worker's scratch) is full, read-only or
over its quota; object storage no longer takes the run's credentials; the run folder is gone. Every item after
the first would fail the same way, each with a message naming its own file, so a worker that meets one stops its
shard, and the driver stops the run and says what and where once, with what to do; a resume goes on once it is
fixed."""

from __future__ import annotations

import errno
import os
import re

RESUME = "{resume}"  # where a fault's advice names the resume command (``RunFault.line``)
DISK = {
    errno.ENOSPC: ("no space is left on the device", "free the disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "make it writable"),
}
# an OSError that crossed a process as text (the mux child's RuntimeError: "OSError: [Errno 28] ...: 'PATH'")
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\][^']*(?:'([^']+)')?")
# object storage refusing who we are (pyarrow's S3 errors): whatever is read or written next is refused too
_CREDENTIALS = re.compile(
    r"AWS Error (INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|INVALID_CLIENT_TOKEN_ID|MISSING_AUTHENTICATION_TOKEN"
    r"|REQUEST_EXPIRED)|(token has expired)"
)
# refused one key: the run's fault when the key is in the run folder, else the item's (an input it may not read)
_DENIED = re.compile(r"key '([^']*)' in bucket '([^']+)': AWS Error (?:ACCESS_DENIED|UNKNOWN \(HTTP status 403\))")


class RunFault(RuntimeError):
    """What is wrong with the run and where (``str``), and what the user does about it (``advice``, naming the
    resume command as ``{resume}``)."""

    def __init__(self, what: str, advice: str):
        super().__init__(what, advice)
        self.what, self.advice = what, advice

    def __str__(self) -> str:
        return self.what

    def line(self, run_uri: str) -> str:
        return f"the run stopped: {self.what}. {self.advice.replace(RESUME, f'ltx-batch resume {run_uri}')}"


def run_fault(error: BaseException, run_uri: str) -> RunFault | None:
    """The fault of the run when ``error`` (or what caused it) is one; None for an item's own fault."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RunFault):
            return seen
        if isinstance(seen, OSError) and seen.errno in DISK:
            return _disk(seen.errno, seen.filename)
        text = str(seen)
        if (found := _ERRNO_TEXT.search(text)) and int(found.group(1)) in DISK:
            return _disk(int(found.group(1)), found.group(2))
        if found := _CREDENTIALS.search(text):
            return _refused(found.group(1) or "the token has expired", run_uri)
        if (found := _DENIED.search(text)) and f"s3://{found.group(2)}/{found.group(1)}".startswith(run_uri):
            return _refused("access denied", run_uri)
        seen = seen.__cause__ or seen.__context__
    return None


def folder_gone(run_uri: str) -> RunFault:
    """The run folder was removed (or unmounted) while the run rendered: nothing more can be kept there."""
    return RunFault(
        f"the run folder {run_uri} is gone (removed or unmounted while the run rendered)",
        f"Restore it, then: {RESUME}; or render again into a new --out",
    )


def _disk(number: int, filename: object) -> RunFault:
    what, fix = DISK[number]
    where = f" under {os.path.dirname(str(filename))}" if filename else ""
    return RunFault(f"{what}{where}", f"What finished is kept; {fix}, then: {RESUME}")


def _refused(why: str, run_uri: str) -> RunFault:
    return RunFault(
        f"object storage refused the run's credentials ({why}) at {run_uri}",
        "What finished is kept; renew the credentials of the driver and the workers (the AWS_* variables or their "
        f"profile), then: {RESUME}",
    )
