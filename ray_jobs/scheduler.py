"""Dynamic scheduling: a queue of shards, each handed to whichever worker is free.

There is no static split, so a slow GPU or a long clip never holds the run back. When a worker dies
(a SIGKILL, a lost node, an out-of-memory kill), the results file of its shard attempt says exactly
which items finished; the rest of the shard goes back on the queue as the next attempt. The item that
was in progress is counted against it: one that keeps killing workers is marked failed with the reason.

Enhanced prompts are generated once per run: a worker tells the enhanced prompts it wrote as soon as it wrote
them, shards handed out later carry them, and a shard that would generate one another running shard is
generating waits for it (its worker takes another shard meanwhile, if there is one).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError
from ray.util.queue import Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ray_jobs.progress import Progress
from ray_jobs.shards import Shard
from runstore.results import ShardRecorder, read_attempt, result_row

SETTLE_SECONDS = 120  # at the end, how long workers may take to record their last quality scores


class NoWorkers(RuntimeError):
    """No render worker could start, or every one died and none could be replaced."""


@dataclass
class Scheduler:
    make_actor: Callable[[], Any]  # a Ray actor handle
    num_actors: int
    shards: list[Shard]
    results_uri: str
    run_id: str
    session: str
    progress: Progress
    max_attempts: int = 3
    max_replacements: int | None = None  # workers started to replace dead ones; default 2 per actor
    startup_errors: list[str] = field(default_factory=list)
    known: dict = field(default_factory=dict)  # enhancement key -> enhanced prompt: recorded earlier, then told

    def __post_init__(self):
        self.queue = deque(self.shards)
        self.crashes: dict[str, int] = {}
        self.replacements = 0
        self.events: Queue | None = None  # made by run(): the retry bookkeeping below needs no Ray
        self.starting: dict = {}  # ready ref -> actor
        self.idle: list = []
        self.busy: dict = {}  # shard ref -> (actor, shard)
        self.enhancing: dict = {}  # enhancement key -> ref of the shard generating it
        self.replacement_limit = 2 * self.num_actors if self.max_replacements is None else self.max_replacements

    def _start_actor(self) -> None:
        actor = self.make_actor()
        self.starting[actor.ready.remote()] = actor

    def run(self) -> None:
        # Progress events live on the driver's own node with no CPU claim, so losing a worker node never
        # takes the queue (and with it every worker's event calls) down.
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        for _ in range(min(self.num_actors, max(1, len(self.queue)))):
            self._start_actor()
        while self.queue or self.busy:
            self._dispatch()
            if not self.busy and not self.starting:
                self._give_up("no render worker is left to take the remaining items")
                return
            refs = [*self.starting, *self.busy]
            finished, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            self._drain_events()
            for ref in finished:
                if ref in self.starting:
                    self._on_started(ref)
                else:
                    self._on_shard_done(ref)
            self.progress.tick()
        self._drain_events()
        with contextlib.suppress(RayError):  # workers record the scores still running for their last items
            ray.get([actor.settle.remote() for actor in self.idle], timeout=SETTLE_SECONDS)
        for actor in self.idle + list(self.starting.values()):
            ray.kill(actor)

    def _dispatch(self) -> None:
        """Hand queued shards to idle workers, each with the enhanced prompts known so far."""
        while self.idle:
            shard = self._next_shard()
            if shard is None:
                return
            actor = self.idle.pop()
            ref = actor.__call__.remote(shard, self.events)
            self.busy[ref] = (actor, shard)
            self.enhancing.update(dict.fromkeys(shard.enhancements(self.known), ref))

    def _next_shard(self) -> Shard | None:
        """The first queued shard that would generate no enhanced prompt another shard is generating."""
        for index, shard in enumerate(self.queue):
            if not shard.enhancements(self.known) & self.enhancing.keys():
                del self.queue[index]
                return shard.with_enhanced(self.known)
        return None

    def _on_started(self, ref) -> None:
        actor = self.starting.pop(ref)
        try:
            info: dict[str, Any] = ray.get(ref)
        except RayError as e:
            message = _short(e)
            self.startup_errors.append(message)
            self.progress.note(f"a render worker failed to start: {message}")
            if not self.idle and not self.busy and not self.starting:
                raise NoWorkers(f"no render worker could start. First error: {self.startup_errors[0]}") from e
            return
        self.progress.note(
            f"worker ready on {info['host']} ({info['device']}, pid {info['pid']}), model loaded "
            f"in {info['load_seconds']:.1f}s, warmed up in {info['warm_up_seconds']:.1f}s"
        )
        self.idle.append(actor)

    def _on_shard_done(self, ref) -> None:
        actor, shard = self.busy.pop(ref)
        self._drain_events()  # what its worker told, before the keys it was generating are released
        self.enhancing = {key: owner for key, owner in self.enhancing.items() if owner != ref}
        try:
            ray.get(ref)
            self.idle.append(actor)
            return
        except RayActorError as e:
            reason = f"the worker died while rendering ({_short(e)})"
            if self.replacements < self.replacement_limit:
                self.replacements += 1
                self._start_actor()
        except RayError as e:  # the shard raised outside any item: keep the worker, retry the rest
            reason = f"the shard failed: {_short(e)}"
            self.idle.append(actor)
        self._drain_events()
        self._requeue(shard, reason)

    def _requeue(self, shard: Shard, reason: str) -> None:
        written = {
            row["item_id"] for row in read_attempt(self.results_uri, self.session, shard.shard_id, shard.attempt)
        }
        remaining = [p for p in shard.items if p.id not in written]
        if not remaining:
            return
        suspect = remaining[0]  # items run in order: the first without a row was in progress
        self.crashes[suspect.id] = self.crashes.get(suspect.id, 0) + 1
        self.progress.note(
            f"shard {shard.shard_id} attempt {shard.attempt}: {reason}; {len(remaining)} item(s) go back on the queue"
        )
        if self.crashes[suspect.id] >= self.max_attempts:
            message = f"gave up after {self.crashes[suspect.id]} attempts: {reason}"
            shard = shard.retry([])  # the failure row gets an attempt file of its own, which the retry never rewrites
            self._fail([suspect], shard, "WorkerLost", message)
            remaining = remaining[1:]
        if remaining:
            self.queue.appendleft(shard.retry(remaining))

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
            self.progress.item(
                {"item_id": planned.id, "status": "failed", "host": "driver", "pid": 0, "error": message}
            )

    def _give_up(self, message: str) -> None:
        while self.queue:
            shard = self.queue.popleft()
            self._fail(list(shard.items), shard.retry([]), "NoWorkers", message)

    def _drain_events(self) -> None:
        if self.events is None:
            return
        try:
            events = self.events.get_nowait_batch(self.events.qsize())
        except Exception:  # the queue actor can be briefly unavailable; events are advisory
            return
        for event in events:
            if event.get("event") == "done":
                self.progress.item(event)
            elif event.get("event") == "enhanced":
                texts = {tuple(key): text for key, text in event["texts"]}
                self.known.update(texts)
                for key in texts:
                    self.enhancing.pop(key, None)
                self.progress.note(f"{event['host']}: {len(texts)} prompt(s) enhanced in {event['seconds']:.1f}s")


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    meaningful = [line for line in text if line.strip() and not line.startswith(("Traceback", "  File", "    "))]
    return (meaningful[-1] if meaningful else type(error).__name__)[:500]
