"""Driver progress: a live bar on a terminal, periodic lines otherwise (so it shows in ``ray job logs``),
and one JSON log line per finished item.

A run with long items counts windows too: a lesson of 8 windows moves the line 8 times, not once at its end,
and the ETA is the windows left at the rate windows were rendered (an item of one window is one window).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TextIO

from ray_jobs.messages import ItemDone, WindowDone


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


@dataclass
class Progress:
    total: int
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    windows: dict[str, int] = field(default_factory=dict)  # item id -> its windows, for items of several

    def __post_init__(self):
        self.ok = 0
        self.failed = 0
        self.per_worker: dict[str, int] = defaultdict(int)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line = 0.0
        self.windows_total = self.total - len(self.windows) + sum(self.windows.values())
        self.windows_done = 0
        self.video_seconds = 0.0  # of the windows told
        self._counted: dict[str, int] = defaultdict(int)  # item id -> its windows counted so far

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def clips_per_hour(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.ok / elapsed * 3600 if elapsed > 0 else 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.windows_done / elapsed if elapsed > 0 else 0.0
        eta = duration((self.windows_total - self.windows_done) / rate) if rate > 0 else "?"
        width = 24
        share = self.windows_done / self.windows_total if self.windows_total else 1.0
        filled = int(width * share)
        workers = " ".join(f"{w}:{n / elapsed * 3600:.0f}/h" for w, n in sorted(self.per_worker.items()))
        windows = f" | windows {self.windows_done}/{self.windows_total}" if self.windows else ""
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} ok {self.ok} failed {self.failed}"
            f"{windows} | {self.clips_per_hour():.1f} clips/h | ETA {eta} | {workers}"
        )

    def window(self, done: WindowDone) -> None:
        """Count one window of an item of several (its item's row comes after its last)."""
        if self._counted[done.item_id] < self.windows.get(done.item_id, 0):
            self._counted[done.item_id] += 1
            self.windows_done += 1
        self.video_seconds += done.seconds
        self.tick()

    def item(self, done: ItemDone) -> None:
        """Record one finished item and log it as a JSON line. Its windows not told (rendered before a resume,
        or left by a failure) count as done with it."""
        if done.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.windows_done += self.windows.get(done.item_id, 1) - self._counted[done.item_id]
        self._counted[done.item_id] = self.windows.get(done.item_id, 1)
        self.per_worker[f"{done.host}/{done.pid}"] += 1
        fields = asdict(done)
        self._write(json.dumps({"item": fields.pop("item_id"), **fields}))
        self.tick(force=True)

    def note(self, message: str) -> None:
        self._write(message)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
        elif force or now - self._last_line >= self.interval:
            self._last_line = now
            self._write(self.line())

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
