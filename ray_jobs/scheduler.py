"""Dynamic scheduling: a queue of shards, each handed to whichever worker is free.

There is no static split, so a slow GPU or a long clip never holds the run back. A worker holds up to two shards
while the queue has work for every worker: it renders the next while the last mp4 of the one before is encoded,
scored and uploaded, whatever the shards' sizes (``RenderActor.__call__`` hands the device on). The workers come
started (their model loads while the driver plans); each warms up for the run in the ``ready`` call that tells the
scheduler it can take shards. When a worker dies (a SIGKILL, a lost node, an out-of-memory kill), Ray starts it
again with the same arguments (``WORKER_OPTIONS``), at most ``RESTARTS`` times per worker, and it is asked to be
ready, so warms up, again. Ray does not run the shard again itself (``max_task_retries=0``): it would rerun all of
it, blind to which item killed the worker. Instead the results file of the shard attempt says which items
finished and the worker's ``started`` event which one was rendering; the rest of the shard goes back on the queue
as the next attempt, and the item that was rendering is counted against it: one that keeps killing workers is
failed after ``max_attempts``, named in its row. The other shard the worker held goes back too, not counted
against any item.

Enhanced prompts are generated once per run: a worker tells the enhanced prompts it wrote as soon as it wrote
them, shards handed out later carry them, and a shard that would generate one another running shard is
generating waits for it (its worker takes another shard meanwhile, if there is one).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError
from ray.util.queue import Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ltxcore.request import RenderRequest
from ray_jobs.messages import (
    Event,
    ItemDone,
    ItemStarted,
    PromptsEnhanced,
    ShardStarted,
    WindowDone,
    WorkerReady,
)
from ray_jobs.progress import Progress
from ray_jobs.shards import Shard
from runstore.plan import JoinWindows, PlannedItem, RenderWindow
from runstore.results import ShardRecorder, error_summary, error_text, read_attempt, result_row
from runstore.run_faults import RunFault

SETTLE_SECONDS = 120  # at the end, how long workers may take to record their last quality scores
EVENT_SECONDS = 1.0  # the longest the driver waits before showing what workers told (items done, prompts)
RESTARTS = 2  # times Ray starts a dead worker again, per worker
SHARDS_IN_HAND = 2  # shards a worker holds at once: the one it renders and the next
# for ray.remote(RenderActor).options; its two concurrent calls take turns on the device
WORKER_OPTIONS = {"max_restarts": RESTARTS, "max_task_retries": 0, "max_concurrency": SHARDS_IN_HAND}
WORKER_LOST = "WorkerLost"
_COLOR = re.compile(r"\x1b\[[0-9;]*m")


class NoWorkers(RuntimeError):
    """No render worker could start, or every one died and none could be restarted."""


@dataclass(frozen=True)
class Loss:
    """Why a shard attempt ended before its items did: ``error_type`` is ``WorkerLost`` when the worker died,
    else the type of the exception the shard raised, whose worker-side traceback is ``trace``."""

    error_type: str
    reason: str
    trace: str = ""

    @staticmethod
    def of(error: RayError) -> Loss:
        if isinstance(error, ActorUnavailableError):  # Ray's word while it restarts the worker
            return Loss(WORKER_LOST, "the worker died while rendering (its process ended)")
        if isinstance(error, RayActorError):
            return Loss(WORKER_LOST, f"the worker died while rendering ({_short(error)})")
        if isinstance(error, RayTaskError):  # an exception of our code, raised outside any item
            return Loss(type(error.cause).__name__, f"the shard failed: {_short(error)}", _COLOR.sub("", str(error)))
        return Loss(WORKER_LOST, f"the shard failed: {_short(error)}")  # its objects or node were lost


@dataclass
class WorkQueue:
    """The shards still to render and what their workers told, without Ray: which shard goes next, what goes
    back after an attempt was lost, and which item fails for good."""

    shards: list[Shard]
    results_uri: str
    run_id: str
    session: str
    progress: Progress
    max_attempts: int = 3
    known: dict = field(default_factory=dict)  # enhancement key -> enhanced prompt: recorded earlier, then told

    def __post_init__(self):
        self.waiting = deque(self.shards)
        self.crashes: dict[str, int] = {}  # item id -> attempts lost while it was rendering
        self.enhancing: dict = {}  # enhancement key -> (shard id, attempt) generating it
        # (shard id, attempt) -> when it last took the device or started an item (in the order of all starts told),
        # and that item (None: none yet)
        self.rendering: dict[tuple[int, int], tuple[int, str | None]] = {}
        self.starts = itertools.count()
        self.next_shard = max((shard.shard_id for shard in self.shards), default=-1) + 1
        # cuts items: the windows still to render, per item, and the item to join once there are none
        self.windows_left: dict[str, set[int]] = {}
        self.cuts: dict[str, PlannedItem] = {}
        for planned in (p for shard in self.shards for p in shard.items):
            if isinstance(planned.part, RenderWindow):
                self.windows_left.setdefault(planned.id, set()).add(planned.part.index)
                self.cuts[planned.id] = planned
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.waiting)

    def take(self) -> Shard | None:
        """The first queued shard that would generate no enhanced prompt another shard is generating, with the
        enhanced prompts known so far; None while every queued shard waits for one."""
        for index, shard in enumerate(self.waiting):
            keys = shard.enhancements(self.known)
            if not keys & self.enhancing.keys():
                del self.waiting[index]
                self.enhancing.update(dict.fromkeys(keys, (shard.shard_id, shard.attempt)))
                return shard.with_enhanced(self.known)
        return None

    def told(self, event: Event) -> None:
        """What a worker told (``ray_jobs.actor``): an item started or done, a window rendered, prompts
        enhanced."""
        if isinstance(event, ShardStarted):
            self.rendering[event.shard] = (next(self.starts), None)
        elif isinstance(event, ItemStarted):
            self.rendering[event.shard] = (next(self.starts), event.item_id)
        elif isinstance(event, ItemDone):
            if event.item_id in self.cuts and event.item_id in self.failed:
                return  # another window of a cuts item that failed already
            if event.status != "ok":
                self.failed.add(event.item_id)
            self.progress.item(event)
        elif isinstance(event, WindowDone):
            self.progress.window(event)
        elif isinstance(event, PromptsEnhanced):
            texts = dict(event.texts)
            self.known.update(texts)
            for key in texts:
                self.enhancing.pop(key, None)
            self.progress.note(f"{event.host}: {len(texts)} prompt(s) enhanced in {event.seconds:.1f}s")

    def returned(self, shard: Shard, rows: list[ItemDone]) -> None:
        """``shard``'s call returned ``rows``: each of its cuts windows without a row is in the run folder (one that
        failed has its item's row). Once an item's last window is, its join goes on the queue, once, unless one of
        its windows failed."""
        written = {done.item_id for done in rows}
        for planned in shard.items:
            part, left = planned.part, self.windows_left.get(planned.id, set())
            if isinstance(part, RenderWindow) and part.index in left and planned.id not in written:
                left.discard(part.index)
                if not left and planned.id not in self.failed:
                    join = replace(self.cuts[planned.id], part=JoinWindows())
                    self.waiting.appendleft(Shard(self.next_shard, (join,)))
                    self.next_shard += 1

    def finished(self, shard: Shard) -> tuple[int, str | None] | None:
        """``shard``'s attempt ended: its enhancement keys are free again. Returns the item it last started, with
        when it started (see ``starts``)."""
        owner = (shard.shard_id, shard.attempt)
        self.enhancing = {key: by for key, by in self.enhancing.items() if by != owner}
        return self.rendering.pop(owner, None)

    def lost(self, shards: list[Shard], loss: Loss) -> None:
        """Put back the items that lost attempts of ``shards`` (those one worker held, in the order it got them)
        did not finish, first in the queue as their next attempts, and count the loss against the one item that
        was rendering: the ``max_attempts``-th fails it."""
        started = {shard.shard_id: self.finished(shard) for shard in shards}
        remaining: dict[int, list[PlannedItem]] = {}
        for shard in shards:
            rows = read_attempt(self.results_uri, self.session, shard.shard_id, shard.attempt)
            written = {row["item_id"] for row in rows}
            remaining[shard.shard_id] = [p for p in shard.items if p.id not in written]
        # the shard that took the device last was on it: its item started last (a row is written once the next item
        # has rendered), else its first without a row (it died on its media or prompts, or the event was lost)
        unfinished = [(shard, p) for shard in shards for p in remaining[shard.shard_id]]
        if not unfinished:
            return
        blamed = unfinished[0]
        told = [shard for shard in shards if started[shard.shard_id] is not None and remaining[shard.shard_id]]
        if told:
            on_device = max(told, key=lambda shard: started[shard.shard_id] or (-1, None))
            item_id = (started[on_device.shard_id] or (-1, None))[1]
            mine = remaining[on_device.shard_id]
            blamed = (on_device, next((p for p in mine if p.id == item_id), mine[0]))
        for shard in reversed(shards):  # back on the queue in the order the worker got them
            self._requeue(shard, remaining[shard.shard_id], blamed[1] if shard is blamed[0] else None, loss)

    def _requeue(self, shard: Shard, remaining: list[PlannedItem], suspect: PlannedItem | None, loss: Loss) -> None:
        if suspect is None:
            if remaining:
                self.progress.note(
                    f"shard {shard.shard_id} attempt {shard.attempt}: {loss.reason} (none of its items on the device); "
                    f"{len(remaining)} item(s) go back on the queue"
                )
                self.waiting.appendleft(shard.retry(remaining))
            return
        self.crashes[suspect.id] = self.crashes.get(suspect.id, 0) + 1
        self.progress.note(
            f"shard {shard.shard_id} attempt {shard.attempt}: {loss.reason} ({suspect.id} in progress, attempt "
            f"{self.crashes[suspect.id]} of {self.max_attempts}); {len(remaining)} item(s) go back on the queue"
        )
        if self.crashes[suspect.id] >= self.max_attempts:
            message = error_text(f"gave up after {self.crashes[suspect.id]} attempts: {loss.reason}", loss.trace)
            shard = shard.retry([])  # the failure row gets an attempt file of its own, which the retry never rewrites
            self._fail([suspect], shard, loss.error_type, message)
            remaining = [p for p in remaining if p is not suspect]
        if remaining:
            self.waiting.appendleft(shard.retry(remaining))

    def give_up(self, message: str) -> None:
        """Fail every queued item with ``message`` (``NoWorkers``); a resume renders them."""
        while self.waiting:
            shard = self.waiting.popleft()
            self._fail(list(shard.items), shard.retry([]), "NoWorkers", message)

    def _fail(self, items, shard: Shard, error_type: str, message: str) -> None:
        recorder = ShardRecorder(self.results_uri, self.run_id, self.session, shard.shard_id, shard.attempt)
        for planned in items:
            now = datetime.now(UTC)
            recorder.add(
                result_row(
                    planned,
                    status="failed",
                    error_type=error_type,
                    error_message=message,
                    started_at=now,
                    finished_at=now,
                    host="driver",
                )
            )
            self.progress.item(ItemDone(planned.id, "failed", "driver", 0, error=error_summary(message)))


@dataclass(eq=False)
class Worker:
    """A render worker's handle and the shards it holds, by the ref of their call, in the order it got them."""

    handle: Any
    shards: dict = field(default_factory=dict)  # call ref -> Shard
    turns: int = 0  # shard calls handed to its process so far: the next call's turn on the device


@dataclass
class Scheduler:
    actors: list  # Ray actor handles of render workers (``ray_jobs.actor``, given WORKER_OPTIONS), started already
    shards: list[Shard]
    results_uri: str
    run_id: str
    session: str
    progress: Progress
    max_attempts: int = 3
    known: dict = field(default_factory=dict)  # enhancement key -> enhanced prompt recorded by earlier attempts
    warm_requests: tuple[RenderRequest, ...] = ()  # what each worker warms up for (once per process) when ready
    startup_errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.work = WorkQueue(
            self.shards, self.results_uri, self.run_id, self.session, self.progress, self.max_attempts, self.known
        )
        self.events: Queue | None = None  # made by run()
        self.starting: dict = {}  # ready ref -> (worker, whether Ray restarted it)
        self.ready: list[Worker] = []
        self.busy: dict = {}  # shard call ref -> its worker

    def run(self) -> None:
        """Render every shard; items that cannot be rendered end as failed rows. Raises ``NoWorkers`` when no
        worker could start at all."""
        # Progress events live on the driver's own node with no CPU claim, so losing a worker node never
        # takes the queue (and with it every worker's event calls) down.
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        for handle in self.actors:
            self.starting[handle.ready.remote(self.warm_requests)] = (Worker(handle), False)
        while self.work or self.busy:
            self._dispatch()
            if not self.busy and not self.starting:
                self.work.give_up("no render worker is left to take the remaining items")
                return
            finished, _ = ray.wait([*self.starting, *self.busy], num_returns=1, timeout=EVENT_SECONDS)
            self._drain_events()
            for ref in finished:
                if ref in self.starting:
                    self._on_started(ref)
                elif ref in self.busy:  # not a call already counted lost with its worker
                    self._on_shard_done(ref)
            self.progress.tick()
        self._drain_events()
        try:  # workers record the scores still running for their last items
            ray.get([worker.handle.settle.remote() for worker in self.ready], timeout=SETTLE_SECONDS)
        except RayError as e:
            self.progress.note(f"a worker did not record its last quality scores ({_short(e)}); see ltx-batch status")
        for worker in self.ready + [worker for worker, _ in self.starting.values()]:
            ray.kill(worker.handle)

    def _dispatch(self) -> None:
        """Hand queued shards to workers, each with the enhanced prompts known so far: first one to every worker
        holding none, then a next one to each worker holding one, while the queue has a shard for every worker
        (near the end, a shard waits for the first worker free rather than queueing behind another)."""
        for holding in range(SHARDS_IN_HAND):
            for worker in [w for w in self.ready if len(w.shards) == holding]:
                if holding and len(self.work) < len(self.ready) + len(self.starting):
                    return
                shard = self.work.take()
                if shard is None:
                    return
                ref = worker.handle.__call__.remote(shard, self.events, worker.turns)
                worker.turns += 1
                worker.shards[ref] = shard
                self.busy[ref] = worker

    def _on_started(self, ref) -> None:
        worker, restarted = self.starting.pop(ref)
        try:
            info: WorkerReady = ray.get(ref)
        except RayError as e:
            message = _short(e)
            if restarted:  # its restarts are spent, or it failed to load again
                self.progress.note(f"a render worker that died could not be restarted: {message}")
                return
            self.startup_errors.append(message)
            self.progress.note(f"a render worker failed to start: {message}")
            if not self.ready and not self.busy and not self.starting:
                raise NoWorkers(f"no render worker could start. First error: {self.startup_errors[0]}") from e
            return
        self.progress.note(info.line())
        self.ready.append(worker)

    def _on_shard_done(self, ref) -> None:
        worker = self.busy.pop(ref)
        held = list(worker.shards.values())  # in the order handed over
        shard = worker.shards.pop(ref)
        self._drain_events()  # what its worker told, before the keys it was generating are released
        try:
            rows: list[ItemDone] = ray.get(ref)
        except RayActorError as e:  # the worker died with every shard it held; Ray restarts it, and ready()
            for other in worker.shards:  # answers once it has, or fails for good
                del self.busy[other]
            worker.shards.clear()
            worker.turns = 0  # a new process
            self.ready.remove(worker)
            ready = worker.handle.ready.options(max_task_retries=-1)  # a new process: it warms up again
            self.starting[ready.remote(self.warm_requests)] = (worker, True)
            self.work.lost(held, Loss.of(e))
            return
        except RayError as e:  # the shard raised outside its items; its worker goes on with the next it holds
            if fault := _run_fault(e):
                raise fault from None  # the run stops: every later item would fail the same way
            self.work.lost([shard], Loss.of(e))
            return
        self.work.returned(shard, rows)
        self.work.finished(shard)

    def _drain_events(self) -> None:
        if self.events is None:
            return
        try:
            events = self.events.get_nowait_batch(self.events.qsize())
        except Exception:  # the queue actor can be briefly unavailable; the next drain gets what it holds
            return
        for event in events:
            self.work.told(event)


def _run_fault(error: RayError) -> RunFault | None:
    """The fault of the run a shard raised for (a worker turns each it meets into one: ``runstore.run_faults``)."""
    cause = error.cause if isinstance(error, RayTaskError) else None
    return cause if isinstance(cause, RunFault) else None


def _short(error: Exception) -> str:
    text = _COLOR.sub("", str(error)).strip().splitlines()
    meaningful = [line for line in text if line.strip() and not line.startswith(("Traceback", "  File", "    "))]
    return (meaningful[-1] if meaningful else type(error).__name__)[:500]
