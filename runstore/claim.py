"""One driver per run: a claim (``RUN/lease.json``) with a live lease (``RUN/lease-beats/<token>``).

Guarantee. On a local (or shared POSIX) folder taking a run is atomic: the claim is hard-linked into place, which
fails when one exists, and a stale or taken-over claim is first renamed away, which only one driver can do; so
of any number of drivers started together exactly one holds the run. On object storage (``pyarrow.fs`` has no
conditional put) a driver writes its claim only when none is there, waits ``SETTLE_SECONDS`` and reads it back:
the token read back wins. With the read-after-write consistency of S3 and GCS this holds unless two writes land
more than ``SETTLE_SECONDS`` apart within the same check window; it is a strong guard, not a proof.

The lease. The holder touches its beat file every ``BEAT_SECONDS``; a claim whose beat is older than
``STALE_SECONDS`` (or that has none), or whose process on this host has exited, belongs to a driver that is
gone: its rows stand, and the ``RUN/session`` file stops its leftover workers. ``--take-over`` replaces a live
claim; then the old token is fenced (``RUN/fenced/<token>``): its workers stop writing and its results rows are
not counted (``runstore.results.read_results``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.fs as pafs

from runstore.run_folder import RunFolder
from storage.fs import write_atomically

BEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
SETTLE_SECONDS = 2.0


class RunTaken(RuntimeError):
    """Another live driver holds the run."""


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid: int
    since: str

    def refusal(self, run_uri: str) -> str:
        return (
            f"run {run_uri} is being rendered by {self.host}/{self.pid} since {self.since}; "
            "wait, or pass --take-over if that driver is gone"
        )


def new_holder() -> Holder:
    return Holder(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat())


class Lease:
    """The claim of one driver session on one run folder."""

    def __init__(self, run: RunFolder, holder: Holder | None = None):
        self.run, self.fs = run, run.fs
        self.holder = holder or new_holder()
        self._claim = run.fs_path(run.claim_uri)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        return self.holder.token

    def _beat_path(self, token: str) -> str:
        return self.run.fs_path(self.run.beat_uri(token))

    def current(self) -> Holder | None:
        """Who holds the run now, if anyone."""
        try:
            with self.fs.open_input_stream(self._claim) as stream:
                return Holder(**json.loads(stream.read()))
        except (FileNotFoundError, OSError, ValueError, TypeError):
            return None

    def is_stale(self, holder: Holder) -> bool:
        """No beat for ``STALE_SECONDS``, or a holder on this host whose process is gone (killed, crashed)."""
        if holder.host == socket.gethostname() and not _alive(holder.pid):
            return True
        info = self.fs.get_file_info(self._beat_path(holder.token))
        if info.type != pafs.FileType.File or info.mtime is None:
            return True
        return time.time() - info.mtime.timestamp() > STALE_SECONDS

    def acquire(self, take_over: bool = False) -> None:
        """Take the run or raise ``RunTaken`` naming the live holder."""
        self.fs.create_dir(self.run.fs_path(self.run.beats_uri), recursive=True)
        self._beat()  # a beat before the claim: a fresh claim is never judged stale
        held = self.current()
        if held is not None:
            stale = self.is_stale(held)
            if not (take_over or stale):
                raise RunTaken(held.refusal(self.run.uri))
            if not stale:  # a live driver taken over: its rows stop counting (a gone one's rows are good)
                self._fence(held.token)
        local = isinstance(self.fs, pafs.LocalFileSystem)
        won = self._claim_local(held) if local else self._claim_remote(held)
        if not won:
            self._drop_beat()
            held = self.current()
            raise RunTaken(held.refusal(self.run.uri) if held else f"run {self.run.uri} was taken by another driver")
        self._start_beats()

    def _claim_local(self, held: Holder | None) -> bool:
        path = self._claim
        if held is not None:
            try:
                os.rename(path, _beside(path, held.token, "replaced"))
            except FileNotFoundError:
                return False  # another driver replaced it first
        tmp = _beside(path, self.token, "tmp")
        with open(tmp, "w") as f:
            json.dump(self.holder.__dict__, f)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _claim_remote(self, held: Holder | None) -> bool:
        now = self.current()
        if (now.token if now else None) != (held.token if held else None):
            return False
        write_atomically(self.fs, self._claim, lambda s: s.write(json.dumps(self.holder.__dict__).encode()))
        time.sleep(SETTLE_SECONDS)
        won = self.current()
        return won is not None and won.token == self.token

    def _fence(self, token: str) -> None:
        self.fs.create_dir(self.run.fs_path(self.run.fenced_uri), recursive=True)
        write_atomically(self.fs, self.run.fs_path(self.run.fence_uri(token)), lambda s: s.write(b""))

    def _beat(self) -> None:
        write_atomically(self.fs, self._beat_path(self.token), lambda s: s.write(str(time.time()).encode()))

    def _drop_beat(self) -> None:
        with contextlib.suppress(OSError):
            self.fs.delete_file(self._beat_path(self.token))

    def _start_beats(self) -> None:
        def beat() -> None:
            while not self._stop.wait(BEAT_SECONDS):
                if not self.holds():
                    return  # fenced: a newer driver took the run
                with contextlib.suppress(OSError):
                    self._beat()

        self._thread = threading.Thread(target=beat, name="run-lease", daemon=True)
        self._thread.start()

    def holds(self) -> bool:
        held = self.current()
        return held is not None and held.token == self.token

    def release(self) -> None:
        """Stop beating and give the run back (so the next driver need not wait for the lease to go stale)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.holds():
            with contextlib.suppress(OSError):
                self.fs.delete_file(self._claim)
        self._drop_beat()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _beside(path: str, token: str, suffix: str) -> str:
    """A hidden name beside the claim at ``path`` for one driver's ``token`` (``RunFolder.claim_uri``)."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/.{name}.{token}.{suffix}"


def fenced_tokens(run: RunFolder) -> set[str]:
    """Tokens of driver sessions that were taken over: their results rows do not count."""
    folder = run.fs_path(run.fenced_uri)
    if run.fs.get_file_info(folder).type != pafs.FileType.Directory:
        return set()
    return {i.base_name for i in run.fs.get_file_info(pafs.FileSelector(folder)) if i.type == pafs.FileType.File}
