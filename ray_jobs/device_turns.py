"""A render worker's device, in turns: its items' device work back to back, each item finished (mp4, scores,
upload) while the next renders (``render_then_finish``), and its two concurrent shard calls taking the device one
after the other in the order the driver handed them over (``DeviceTurns``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

TURN_GRACE_SECONDS = 5.0  # how long a free device waits for a shard call handed over before the one at hand
Entry = TypeVar("Entry")  # what render_then_finish starts ...
Row = TypeVar("Row")  # ... and what it yields


class DeviceTurns:
    """The device is one shard call's at a time, taken in the order the driver handed the calls over (their
    ``turn``: 0, 1, 2, ... per worker process), so shards render in the order of the queue. A call whose
    earlier turn has not come within ``TURN_GRACE_SECONDS`` of a free device goes anyway: a call Ray lost holds
    nobody up for longer."""

    def __init__(self):
        self.free = threading.Condition()
        self.busy = False
        self.next = 0  # the turn expected next

    def take(self, turn: int) -> None:
        with self.free:
            self.free.wait_for(lambda: not self.busy)
            deadline = time.monotonic() + TURN_GRACE_SECONDS
            while self.busy or (turn > self.next and time.monotonic() < deadline):
                self.free.wait(None if self.busy else max(0.0, deadline - time.monotonic()))
            self.busy = True
            self.next = max(self.next, turn + 1)

    def hand_on(self) -> None:
        with self.free:
            self.busy = False
            self.free.notify_all()


def render_then_finish(
    items: Iterable[Entry], start: Callable[[Entry], Callable[[], Row]], rendered: Callable[[], None] = lambda: None
) -> Iterator[Row]:
    """Each item's row, finished only once the next item's device work is done: ``start`` renders an item and
    returns what finishes it (its mp4, written meanwhile on a CPU thread, then its scores and upload), so the
    device never waits for an encode. ``rendered`` is called once the last item's device work is done, before
    it is finished: the worker hands the device to its next shard there. The benchmarks run a worker's steady
    state through this loop too."""
    finishing: Callable[[], Row] | None = None
    for item in items:
        started = start(item)
        if finishing is not None:
            yield finishing()
        finishing = started
    rendered()
    if finishing is not None:
        yield finishing()
