"""Driver progress: a live bar on a terminal, periodic lines otherwise (so it shows in ``ray job logs``),
and one JSON log line per finished item."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TextIO

from ray_jobs.messages import ItemDone


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

    def __post_init__(self):
        self.ok = 0
        self.failed = 0
        self.per_worker: dict[str, int] = defaultdict(int)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line = 0.0

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def clips_per_hour(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.ok / elapsed * 3600 if elapsed > 0 else 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = duration((self.total - self.done) / rate) if rate > 0 else "?"
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        workers = " ".join(f"{w}:{n / elapsed * 3600:.0f}/h" for w, n in sorted(self.per_worker.items()))
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} ok {self.ok} failed {self.failed}"
            f" | {self.clips_per_hour():.1f} clips/h | ETA {eta} | {workers}"
        )

    def item(self, done: ItemDone) -> None:
        """Record one finished item and log it as a JSON line."""
        if done.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
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
