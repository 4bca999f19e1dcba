"""What render workers tell the driver, as typed values: through the event queue while a shard renders
(advisory: the results table is the record), and as the shard call's return value (what the driver acts on):
one ``ItemDone`` per row the shard wrote. A window is told once, as an event, for the progress line; a ``cuts``
window is in the run folder once its shard call has returned without a row for it, which is when the driver
counts it towards its item's join."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerReady:
    """A worker loaded its model and warmed up (``RenderActor.ready``)."""

    host: str
    device: str
    pid: int
    load_seconds: float
    warm_up_seconds: float
    compile_cache: str | None  # hit or miss of the shared compile cache; None: the worker does not compile

    def line(self) -> str:
        cache = f" (compile cache {self.compile_cache})" if self.compile_cache else ""
        return (
            f"worker ready on {self.host} ({self.device}, pid {self.pid}), model loaded in {self.load_seconds:.1f}s, "
            f"warmed up in {self.warm_up_seconds:.1f}s{cache}"
        )


@dataclass(frozen=True)
class ShardStarted:
    """A worker's shard call took the device (its media, prompts, then items): a death before its first item
    starts is blamed on this shard, not on the one before it, whose last mp4 may still be being finished."""

    shard: tuple[int, int]  # (shard id, attempt)


@dataclass(frozen=True)
class ItemStarted:
    """A worker began an item's device work: if the worker dies now, this item is the one blamed."""

    shard: tuple[int, int]  # (shard id, attempt)
    item_id: str


@dataclass(frozen=True)
class ItemDone:
    """An item's row is written (ok or failed)."""

    item_id: str
    status: str
    host: str
    pid: int
    seconds: float = 0.0  # started to finished, as in its row
    error: str | None = None  # the error's one-line summary


@dataclass(frozen=True)
class WindowDone:
    """A window of an item of several is rendered (its item has no row until its last window, or its join);
    ``seconds``: of video it shows, for the progress line."""

    item_id: str
    window: int
    host: str
    seconds: float = 0.0


@dataclass(frozen=True)
class PromptsEnhanced:
    """Enhanced prompts a worker generated and recorded, so that no other worker generates them again."""

    texts: tuple[tuple[Hashable, str], ...]  # (runstore.enhanced.enhancement_key, the enhanced prompt)
    seconds: float
    host: str


Event = ShardStarted | ItemStarted | ItemDone | WindowDone | PromptsEnhanced
