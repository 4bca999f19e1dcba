"""The driver's bookkeeping without Ray (shards, retries after a lost worker, poison items, giving up, enhanced
prompts once per run, the session fence that stops a leftover worker of an earlier driver), then the scheduler
on a local Ray with workers whose items raise or kill them."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import QUICK_1S

from ltxcore.bundle import RELEASED_NAMES
from manifests.load import load_manifest
from ray_jobs.actor import RenderActor, WorkerSettings
from ray_jobs.messages import ItemStarted, PromptsEnhanced, ShardStarted
from ray_jobs.progress import Progress
from ray_jobs.render import warm_requests
from ray_jobs.scheduler import WORKER_OPTIONS, Loss, Scheduler, WorkQueue
from ray_jobs.shards import Shard, cache_key, make_shards
from runstore.plan import PlannedItem, plan
from runstore.results import ShardRecorder, error_summary, latest_attempts, read_results, result_row, still_to_render
from runstore.run_folder import RunFolder

LESSON = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "lesson"
DIED = Loss("WorkerLost", "the worker died while rendering (the actor process exited)")


def _items(tmp_path: Path, specs: list[tuple[str, int]]) -> list[PlannedItem]:
    """Planned items from a real manifest, one per (prompt, num_frames) spec, ids item-00, item-01, ..."""
    entries = [
        {"id": f"item-{i:02d}", "prompt": prompt, "num_frames": frames} for i, (prompt, frames) in enumerate(specs)
    ]
    body = {
        "run_seed": 1,
        "defaults": {"audio": str(LESSON / "en.ogg"), "image": str(LESSON / "presenter.png")},
        "items": entries,
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(body))
    return plan(load_manifest(path))


@pytest.fixture
def items(tmp_path) -> list[PlannedItem]:
    return _items(tmp_path, [("A presenter", 17)] * 4)


def _queue(tmp_path: Path, shards: list[Shard], max_attempts: int = 3) -> WorkQueue:
    progress = Progress(total=sum(len(s.items) for s in shards), stream=io.StringIO())
    return WorkQueue(shards, str(tmp_path / "results"), "run-1", "s1", progress, max_attempts)


def _log(work: WorkQueue) -> str:
    stream = work.progress.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def _take(work: WorkQueue) -> Shard:
    shard = work.take()
    assert shard is not None, "a shard is ready"
    return shard


def _record_ok(work: WorkQueue, shard: Shard, done: list[PlannedItem]) -> None:
    """What a worker writes as it finishes items of ``shard``."""
    recorder = ShardRecorder(work.results_uri, work.run_id, work.session, shard.shard_id, shard.attempt)
    for planned in done:
        now = datetime.now(UTC)
        recorder.add(result_row(planned, status="ok", started_at=now, finished_at=now, host="worker"))


def _rows(results_uri: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in read_results(results_uri).to_pylist():
        rows.setdefault(row["item_id"], []).append(row)
    return rows


# --- shards ------------------------------------------------------------------------------------


def test_shards_group_cache_keys_largest_group_first_and_keep_manifest_order(tmp_path):
    planned = _items(tmp_path, [("A", 17), ("B", 17), ("A", 17), ("A", 25), ("A", 17), ("B", 17), ("A", 17), ("A", 17)])
    shards = make_shards(planned, shard_size=2)
    ids = [[p.id for p in s.items] for s in shards]
    # lengths do not split a group (compiled graphs serve every length): item-03's 25 frames join the A items
    assert ids == [["item-00", "item-02"], ["item-03", "item-04"], ["item-06", "item-07"], ["item-01", "item-05"]]
    assert [s.shard_id for s in shards] == [0, 1, 2, 3] and all(s.attempt == 0 for s in shards)
    assert all(len({cache_key(p) for p in s.items}) == 1 for s in shards)  # one prompt, image and frame size each


def test_shards_shrink_so_every_worker_gets_one(items):
    assert [len(s.items) for s in make_shards(items, shard_size=8, workers=3)] == [2, 2]
    assert [len(s.items) for s in make_shards(items, shard_size=8, workers=4)] == [1, 1, 1, 1]
    assert [len(s.items) for s in make_shards(items, shard_size=3, workers=1)] == [3, 1]
    assert [len(s.items) for s in make_shards(items, shard_size=8, workers=0)] == [4]


def test_shard_size_below_one_is_refused(items):
    with pytest.raises(ValueError, match="shard size must be at least 1"):
        make_shards(items, shard_size=0)


def test_retry_numbers_the_next_attempt_of_the_same_shard(items):
    shard = Shard(5, tuple(items), attempt=1)
    assert shard.retry(items[2:]) == Shard(5, tuple(items[2:]), attempt=2)


# --- retries -----------------------------------------------------------------------------------


def test_lost_worker_requeues_only_unfinished_items_first_and_counts_the_one_rendering(tmp_path, items):
    shard, other = Shard(7, tuple(items[:3])), Shard(8, tuple(items[3:]))
    work = _queue(tmp_path, [other])
    _record_ok(work, shard, items[:1])  # item-01 rendered too, but its row waits for item-02's render
    for planned in items[:3]:
        work.told(ItemStarted((7, 0), planned.id))
    work.lost([shard], DIED)
    assert [work.take(), work.take(), work.take()] == [Shard(7, tuple(items[1:3]), attempt=1), other, None]
    assert work.crashes == {"item-02": 1} and len(work) == 0
    note = f"shard 7 attempt 0: {DIED.reason} (item-02 in progress, attempt 1 of 3); 2 item(s) go back on the queue"
    assert note in _log(work)
    assert {k: [r["status"] for r in v] for k, v in _rows(work.results_uri).items()} == {"item-00": ["ok"]}


def test_a_worker_lost_with_two_shards_blames_only_the_item_rendering_and_requeues_both_in_order(tmp_path, items):
    """The worker held shard 3 (its last item's mp4 still being finished) and shard 4 (rendering its first
    item): both go back, shard 3 first, and only the item on the device is counted."""
    earlier, later = Shard(3, tuple(items[:2])), Shard(4, tuple(items[2:]))
    work = _queue(tmp_path, [])
    _record_ok(work, earlier, items[:1])
    work.told(ShardStarted((3, 0)))
    for shard, planned in ((earlier, items[0]), (earlier, items[1])):
        work.told(ItemStarted((shard.shard_id, shard.attempt), planned.id))
    work.told(ShardStarted((4, 0)))
    work.told(ItemStarted((4, 0), items[3].id))  # its second item: the first has no row yet either
    work.lost([earlier, later], DIED)
    assert [work.take(), work.take()] == [Shard(3, (items[1],), attempt=1), Shard(4, tuple(items[2:]), attempt=1)]
    assert work.crashes == {"item-03": 1}
    assert (
        f"shard 3 attempt 0: {DIED.reason} (none of its items on the device); 1 item(s) go back on the queue"
        in _log(work)
    )


def test_a_worker_lost_while_its_next_shard_prepares_blames_that_shard_not_the_last_item_before(tmp_path, items):
    """The next shard took the device and died fetching its media: its first item is counted, not the shard
    before's last item, whose device work was done (its mp4 was being finished)."""
    earlier, later = Shard(3, tuple(items[:2])), Shard(4, tuple(items[2:]))
    work = _queue(tmp_path, [])
    for event in (ShardStarted((3, 0)), ItemStarted((3, 0), items[0].id), ItemStarted((3, 0), items[1].id)):
        work.told(event)
    work.told(ShardStarted((4, 0)))
    work.lost([earlier, later], DIED)
    assert work.crashes == {"item-02": 1}


def test_a_shard_lost_before_any_item_started_counts_its_first_unfinished_item(tmp_path, items):
    work = _queue(tmp_path, [])
    work.lost([Shard(0, tuple(items[:2]))], DIED)  # no started event: it died fetching media, say
    assert work.crashes == {"item-00": 1} and work.take() == Shard(0, tuple(items[:2]), attempt=1)


def test_lost_worker_after_its_last_item_requeues_nothing(tmp_path, items):
    shard = Shard(0, tuple(items[:2]))
    work = _queue(tmp_path, [])
    _record_ok(work, shard, items[:2])
    work.lost([shard], DIED)
    assert len(work) == 0 and work.crashes == {}


def test_item_that_keeps_killing_workers_fails_after_max_attempts_and_the_rest_still_renders(tmp_path, items):
    work = _queue(tmp_path, [Shard(0, tuple(items[:3]))], max_attempts=2)
    work.lost([_take(work)], DIED)  # item-00 was in progress: first crash, retried
    retry = _take(work)
    assert [p.id for p in retry.items] == ["item-00", "item-01", "item-02"]
    assert _rows(work.results_uri) == {}

    work.lost([retry], DIED)  # second crash on item-00: it is the poison item
    retry = _take(work)
    assert [p.id for p in retry.items] == ["item-01", "item-02"] and len(work) == 0
    [failed] = _rows(work.results_uri)["item-00"]
    assert (failed["status"], failed["error_type"]) == ("failed", "WorkerLost")
    assert failed["error_message"] == f"gave up after 2 attempts: {DIED.reason}"
    assert work.progress.failed == 1

    _record_ok(work, retry, list(retry.items))  # a worker renders the rest: the failure row stays
    rows = _rows(work.results_uri)
    assert {k: [r["status"] for r in v] for k, v in rows.items()} == {
        "item-00": ["failed"],
        "item-01": ["ok"],
        "item-02": ["ok"],
    }
    assert [p.id for p in still_to_render(items[:3], work.results_uri)] == ["item-00"]  # resume retries it


def test_give_up_fails_every_queued_item_with_the_reason_and_resume_renders_them(tmp_path, items):
    shards = [Shard(0, tuple(items[:2]), attempt=1), Shard(1, tuple(items[2:]))]
    work = _queue(tmp_path, shards)
    work.give_up("no render worker is left to take the remaining items")
    assert len(work) == 0
    rows = [r for v in _rows(work.results_uri).values() for r in v]
    assert sorted(r["item_id"] for r in rows) == [p.id for p in items]
    assert {(r["status"], r["error_type"], r["error_message"]) for r in rows} == {
        ("failed", "NoWorkers", "no render worker is left to take the remaining items")
    }
    assert {r["item_id"]: r["attempt"] for r in rows} == {"item-00": 2, "item-01": 2, "item-02": 1, "item-03": 1}
    assert work.progress.failed == 4 and _log(work).count('"status": "failed"') == 4
    assert still_to_render(items, work.results_uri) == items


# --- the session fence -------------------------------------------------------------------------


def test_a_newer_session_fences_out_the_older_one(tmp_path):
    uri = str(tmp_path / "run")
    RunFolder(uri).claim("first")
    worker_view = RunFolder(uri)  # a worker builds its own RunFolder from the URI
    assert worker_view.owned_by("first") and not worker_view.owned_by("second")
    RunFolder(uri).claim("second")  # a resume
    assert not worker_view.owned_by("first") and worker_view.owned_by("second")
    assert not [p for p in Path(uri).iterdir() if p.name.startswith(".")]  # claimed atomically, no leftovers


# --- enhanced prompts, once per run --------------------------------------------------------------


def test_a_prompt_being_enhanced_is_waited_for_not_enhanced_twice(tmp_path):
    entries = [("A", 5), ("A", 5), ("B", 5), ("A", 5)]  # (prompt, seed): three items share one key
    body = {
        "defaults": {"audio": str(LESSON / "en.ogg"), "num_frames": 17, "enhance_prompt": True},
        "items": [{"id": f"item-{i}", "prompt": p, "seed": s} for i, (p, s) in enumerate(entries)],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body))
    planned = plan(load_manifest(tmp_path / "m.yaml"))
    work = _queue(tmp_path, [Shard(i, (p,)) for i, p in enumerate(planned)])
    handed = [work.take(), work.take(), work.take()]
    assert [s.shard_id for s in handed if s] == [0, 2] and handed[2] is None  # 1 and 3 would enhance what 0 does
    assert len(work) == 2
    key_a = ("A", None, 5)
    work.told(PromptsEnhanced(((key_a, "A, enhanced"),), 1.0, "w"))
    handed = [work.take(), work.take()]
    assert [s.shard_id for s in handed if s] == [1, 3]
    assert [p.prompt_enhanced for s in handed if s for p in s.items] == ["A, enhanced", "A, enhanced"]
    assert work.known == {key_a: "A, enhanced"} and len(work) == 0
    assert "w: 1 prompt(s) enhanced in 1.0s" in _log(work)


def test_a_shard_that_ends_without_telling_its_prompts_frees_them_for_the_next(tmp_path):
    body = {
        "defaults": {"audio": str(LESSON / "en.ogg"), "num_frames": 17, "enhance_prompt": True, "prompt": "A"},
        "items": [{"id": f"item-{i}", "seed": 5} for i in range(2)],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body))
    planned = plan(load_manifest(tmp_path / "m.yaml"))
    work = _queue(tmp_path, [Shard(i, (p,)) for i, p in enumerate(planned)])
    first = work.take()
    assert first is not None and work.take() is None
    work.finished(first)  # its enhancement failed, say: the item's row says why, and the other shard tries
    assert work.take() == Shard(1, (planned[1],))


def test_a_resumed_run_starts_from_the_recorded_enhancements(tmp_path):
    from runstore.enhanced import enhancement_key, recorded_enhancements

    items = _items(tmp_path, [("A presenter", 17)] * 2)
    items = [PlannedItem(p.item.model_copy(update={"enhance_prompt": True}), p.fingerprint) for p in items]
    work = _queue(tmp_path, [Shard(0, tuple(items))])
    recorder = ShardRecorder(work.results_uri, "run-1", "s1", 0, 0)
    now = datetime.now(UTC)
    recorder.add(result_row(items[0], status="failed", prompt_enhanced="old", started_at=now, finished_at=now))
    recorder.add(result_row(items[0], status="ok", prompt_enhanced="kept", started_at=now, finished_at=now))
    recorder.add(result_row(items[1], status="ok", prompt_enhanced="stale", started_at=now, finished_at=now))
    changed = [items[0], PlannedItem(items[1].item, "another-fingerprint")]  # item-01's inputs changed since
    known = recorded_enhancements(changed, read_results(work.results_uri))
    assert known == {enhancement_key(items[0].item): "kept"}


# --- on Ray: what a worker's failures are recorded as -------------------------------------------

FAST = QUICK_1S
BUG, SHARD_BUG, CRASH = "a bug in an item's render", "a bug in the shard's prompts", "an item that kills its worker"


def _faulty_worker(warm_ups: Path):
    """A real render worker whose items fail as their prompts say: a TypeError raised in the item's render, one
    raised in the shard's prompt preparation (outside any item), a process that exits in the item's render; each
    of its processes writes its pid to ``warm_ups`` as it warms up. Defined in a function, so Ray ships the class
    itself to its workers."""

    class FaultyWorker(RenderActor):
        def __init__(self, *args):
            super().__init__(*args)
            render, prepare, warm_up = self.engine.render, self.engine.prepare_prompts, self.engine.warm_up

            def faulty_render(request, output, **kwargs):
                if request.prompt == BUG:
                    raise TypeError("expected a tensor, got None")
                if request.prompt == CRASH:
                    os._exit(1)
                return render(request, output, **kwargs)

            def faulty_prepare(requests):
                if any(r.prompt == SHARD_BUG for r in requests):
                    raise TypeError("the prompt cache is None")
                return prepare(requests)

            def told_warm_up(request):
                with open(warm_ups, "a") as f:
                    f.write(f"{os.getpid()}\n")
                return warm_up(request)

            vars(self.engine).update(render=faulty_render, prepare_prompts=faulty_prepare, warm_up=told_warm_up)

    return FaultyWorker


def test_failures_on_ray_are_named_by_what_happened(local_ray, tiny_bundle, tmp_path):
    """One worker, two attempts per item: its own TypeError fails an item with that type and its traceback,
    one raised outside any item fails the item after its attempts with that type, and the item that kills
    its worker (Ray restarts it) is WorkerLost after two; the items around them render ok. Every worker process,
    the ones Ray restarted too, warms up before it renders."""
    import ray

    prompts = ["A presenter", BUG, CRASH, "A presenter", SHARD_BUG]
    body = {
        "defaults": {"audio": str(LESSON / "en.ogg")},
        "items": [{"id": f"item-{i}", "prompt": p} for i, p in enumerate(prompts)],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body))
    planned = plan(load_manifest(tmp_path / "m.yaml", overrides=FAST))
    run = RunFolder(str(tmp_path / "run"))
    run_id = run.record_submission([], planned, {})
    run.claim("s1")
    paths = {name: getattr(tiny_bundle, name) for name in RELEASED_NAMES}
    warm_ups = tmp_path / "warm-ups"
    remote = ray.remote(_faulty_worker(warm_ups)).options(**WORKER_OPTIONS, num_cpus=1)
    progress = Progress(total=len(planned), stream=io.StringIO())
    scheduler = Scheduler(
        [remote.remote(WorkerSettings(paths, "none", "cpu", run.uri, run_id, "s1", threads=1))],
        [Shard(0, tuple(planned[:4])), Shard(1, tuple(planned[4:]))],
        run.results_uri,
        run_id,
        "s1",
        progress,
        max_attempts=2,
        warm_requests=tuple(warm_requests(planned[:1])),
    )
    scheduler.run()

    latest = {r["item_id"]: r for r in latest_attempts(read_results(run.results_uri)).to_pylist()}
    assert {i: latest[i]["status"] for i in latest} == {
        "item-0": "ok",
        "item-1": "failed",
        "item-2": "failed",
        "item-3": "ok",
        "item-4": "failed",
    }
    bug = latest["item-1"]
    assert bug["error_type"] == "TypeError" and error_summary(bug["error_message"]) == "expected a tensor, got None"
    trace = bug["error_message"].split("\n\n", 1)[1]
    assert trace.startswith("Traceback (most recent call last):") and "in faulty_render" in trace
    assert trace.rstrip().endswith("TypeError: expected a tensor, got None")

    crash = latest["item-2"]
    assert crash["error_type"] == "WorkerLost" and crash["host"] == "driver"
    assert crash["error_message"] == "gave up after 2 attempts: the worker died while rendering (its process ended)"

    shard_bug = latest["item-4"]
    assert shard_bug["error_type"] == "TypeError"
    assert error_summary(shard_bug["error_message"]) == (
        "gave up after 2 attempts: the shard failed: TypeError: the prompt cache is None"
    )
    assert "in faulty_prepare" in shard_bug["error_message"]

    every_row = read_results(run.results_uri).to_pylist()
    assert sorted(r["item_id"] for r in every_row if r["status"] == "ok") == ["item-0", "item-3"]  # each once
    log = _log(scheduler.work)
    assert "(item-2 in progress, attempt 2 of 2)" in log and "(item-4 in progress, attempt 2 of 2)" in log
    # the worker held the next shard when item-2 killed it: it went back without counting against its item
    assert "shard 1 attempt 0: the worker died while rendering (its process ended) (none of its items" in log
    assert log.count("worker ready on") == 3  # started, then restarted by Ray after each death
    warmed = [int(pid) for pid in warm_ups.read_text().split()]
    ready = [int(pid) for pid in re.findall(r"worker ready on .*, pid (\d+)\)", log)]
    rendered = {json.loads(line)["pid"] for line in log.splitlines() if line.startswith('{"item"')} - {0}
    assert len(set(warmed)) == 3 and warmed == ready and rendered <= set(warmed)  # a restarted one warms up again
