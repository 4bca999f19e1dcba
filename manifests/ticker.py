"""A line on stderr every few seconds of long work (items checked, files probed, items planned), so that a big
manifest never means minutes of silence; work shorter than one interval prints nothing."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

EVERY_SECONDS = 5.0


@dataclass
class Ticker:
    doing: str  # "validating: items checked"
    total: int
    every: float = EVERY_SECONDS
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def __post_init__(self):
        self._next = time.monotonic() + self.every

    def __call__(self, done: int) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.every
            print(f"{self.doing}: {done:,} of {self.total:,}", file=self.stream, flush=True)
