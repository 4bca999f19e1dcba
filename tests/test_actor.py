"""The render worker outside Ray: its scratch folder holds one shard's inputs at most and is removed with it;
every clip gets its quality record without the worker waiting for it."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from conftest import LESSON, QUICK_1S

from ltxcore.bundle import RELEASED_NAMES
from manifests.load import load_manifest
from ray_jobs.actor import RenderActor, WorkerSettings
from ray_jobs.shards import Shard
from runstore.plan import plan
from runstore.results import error_summary, read_results
from runstore.run_folder import RunFolder

FAST = QUICK_1S


def _rows(run: RunFolder) -> list[dict]:
    return [{**r, "timings": dict(r["timings"] or ())} for r in read_results(run.results_uri).to_pylist()]


def _scratch_files(actor: RenderActor) -> list[str]:
    """The fetched inputs and videos in the worker's scratch (the scorer's links, kept beside them, aside)."""
    files = [p for p in actor.scratch.rglob("*") if p.is_file()]
    return sorted(p.name for p in files if p.relative_to(actor.scratch).parts[0] != "scoring")


def test_scratch_is_pruned_after_upload_and_between_shards(tiny_bundle, tmp_path):
    items = [{"id": f"clip-{name[:2]}", "audio": f"file://{LESSON / name}"} for name in ("en.ogg", "de.mp3")]
    defaults = {"prompt": "A presenter", "image": f"file://{LESSON / 'presenter.png'}"}
    # file:// inputs are fetched into scratch like s3:// ones
    planned, actor = _planned_actor({"defaults": defaults, "items": items}, tmp_path, tiny_bundle)

    assert [s.status for s in actor(Shard(0, (planned[0],)))] == ["ok"]
    assert (tmp_path / "run" / "videos" / "clip-en.mp4").stat().st_size > 0
    assert _scratch_files(actor) == ["en.ogg", "presenter.png"]  # the video left with the upload

    assert [s.status for s in actor(Shard(1, (planned[1],)))] == ["ok"]
    assert _scratch_files(actor) == ["de.mp3", "presenter.png"]  # the first shard's audio is gone, the image kept

    actor.settle()  # as the driver asks at the end: scores not ready when their rows were written are added
    revisions = list((tmp_path / "run" / "results" / "_revisions").glob("*.parquet"))
    assert len(revisions) <= 2  # late scores are written a batch at a time: one file per shard at most
    for row in _rows(actor.run):  # random weights draw no face: null scores that say why
        assert row["quality"]["lipsync_confidence"] is None and "no face found" in row["quality"]["reason"]
        assert 0 <= row["timings"]["quality_wait"] < 1  # the worker never waits for a score

    scratch = actor.scratch
    del actor
    gc.collect()
    assert not scratch.exists()


def test_every_image_of_a_list_is_fetched_like_the_audio(tiny_bundle, tmp_path):
    pose = tmp_path / "pose.png"
    pose.write_bytes((LESSON / "presenter.png").read_bytes())
    images = [{"path": f"file://{LESSON / 'presenter.png'}"}, {"path": f"file://{pose}", "frame": 8, "strength": 0.5}]
    item = {"id": "clip", "audio": f"file://{LESSON / 'en.ogg'}", "prompt": "A presenter", "images": images}
    planned, actor = _planned_actor({"items": [item]}, tmp_path, tiny_bundle)
    assert [s.status for s in actor(Shard(0, (planned[0],)))] == ["ok"]
    assert _scratch_files(actor) == ["en.ogg", "pose.png", "presenter.png"]


def test_corrupt_audio_fails_its_item_and_the_shard_goes_on(tiny_bundle, tmp_path):
    data = (LESSON / "de.mp3").read_bytes()
    corrupt = tmp_path / "corrupt.mp3"  # a real header, then noise: it passes validation and fails to decode
    corrupt.write_bytes(data[:1000] + bytes((i * 37) % 256 for i in range(len(data) - 1000)))
    items = [{"id": "bad", "audio": str(corrupt)}, {"id": "good", "audio": str(LESSON / "en.ogg")}]
    planned, actor = _planned_actor({"defaults": {"prompt": "A presenter"}, "items": items}, tmp_path, tiny_bundle)
    summaries = actor(Shard(0, tuple(planned)))
    assert [(s.item_id, s.status) for s in summaries] == [("bad", "failed"), ("good", "ok")]
    rows = {r["item_id"]: r for r in _rows(actor.run)}
    assert rows["bad"]["error_type"] == "RenderInputError" and "could not be decoded" in rows["bad"]["error_message"]
    assert summaries[0].error.startswith("audio:")  # the driver prints "failed bad: RenderInputError: audio: ..."


def test_a_failed_enhancement_fails_its_items_with_its_traceback_and_is_not_generated_again(tiny_bundle, tmp_path):
    items = [{"id": f"clip-{i}", "audio": str(LESSON / "en.ogg")} for i in range(2)]  # one enhancement key
    body = {"defaults": {"prompt": "A presenter", "enhance_prompt": True, "seed": 3}, "items": items}
    planned, actor = _planned_actor(body, tmp_path, tiny_bundle)
    enhancer, calls = actor.engine.enhancer, []
    generate = enhancer.generate
    vars(enhancer).update(
        problem="its tokenizer has no chat template", generate=lambda key: calls.append(key) or generate(key)
    )
    summaries = actor(Shard(0, tuple(planned)))
    assert [s.status for s in summaries] == ["failed", "failed"] and len(calls) == 1
    message = "enhance_prompt: the bundle's Gemma cannot generate text: its tokenizer has no chat template."
    assert [s.error for s in summaries] == [message, message]  # the driver's lines: no traceback
    for row in _rows(actor.run):
        assert row["error_type"] == "RenderInputError" and error_summary(row["error_message"]) == message
        assert "Traceback (most recent call last):" in row["error_message"] and "in generate" in row["error_message"]


def test_the_next_shard_renders_while_the_last_mp4_of_the_shard_before_is_finished(tiny_bundle, tmp_path):
    """A worker runs its two shards' calls at once (``WORKER_OPTIONS``) and they take turns on the device in the
    order they were handed over: the second shard's first item renders while the first shard's last mp4 is
    still being encoded, and each call returns only once its own rows are written."""
    items = [{"id": name, "audio": str(LESSON / "en.ogg")} for name in ("a0", "a1", "b0")]
    planned, actor = _planned_actor({"defaults": {"prompt": "A presenter"}, "items": items}, tmp_path, tiny_bundle)
    render, b0_started, seen, order = actor.engine.render, threading.Event(), {}, []
    encoder = ThreadPoolExecutor(1)

    def render_slow_last_encode(request, output, **kwargs):
        name = Path(output).stem
        order.append(name)
        if name == "b0":
            seen["a rows written"] = first.done()
            b0_started.set()
        result = render(request, output, **kwargs)
        if name == "a1":  # the first shard's last mp4 is finished only once b0 is on the device
            muxing = result.muxing
            assert muxing is not None

            def encode_after_b0() -> float:
                seen["b0 started while a1 encoded"] = b0_started.wait(120)
                return muxing.result()

            result.muxing = encoder.submit(encode_after_b0)
        return result

    vars(actor.engine)["render"] = render_slow_last_encode
    with ThreadPoolExecutor(2) as calls:  # as Ray runs a worker's two calls, the later one handed over first
        second = calls.submit(actor, Shard(1, tuple(planned[2:])), None, 1)
        first = calls.submit(actor, Shard(0, tuple(planned[:2])), None, 0)
        assert [s.status for s in first.result()] == ["ok", "ok"] and [s.status for s in second.result()] == ["ok"]
    assert seen == {"a rows written": False, "b0 started while a1 encoded": True} and order == ["a0", "a1", "b0"]
    assert sorted(r["item_id"] for r in _rows(actor.run) if r["status"] == "ok") == ["a0", "a1", "b0"]


def _planned_actor(body: dict, tmp_path, tiny_bundle) -> tuple[list, RenderActor]:
    """The plan of manifest ``body`` (quick settings) and a CPU worker that owns its new run."""
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump(body))
    planned = plan(load_manifest(manifest, overrides=FAST))
    run = RunFolder(str(tmp_path / "run"))
    run_id = run.record_submission([], planned, {})
    run.claim("s1")
    paths = {name: getattr(tiny_bundle, name) for name in RELEASED_NAMES}
    return planned, RenderActor(WorkerSettings(paths, "none", "cpu", run.uri, run_id, "s1"))


def test_a_new_workers_scratch_removes_what_killed_workers_of_this_host_left(tmp_path):
    """A worker killed with SIGKILL leaves its scratch (mp4s, partial files); the next worker on the host removes
    it, and leaves those of workers still alive, and of other hosts, alone."""
    import os
    import socket
    import subprocess
    import sys

    from ray_jobs.scratch import scratch_folder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead = tmp_path / f"{host}-{int(gone.stdout)}-0badf00d"
    alive = tmp_path / f"{host}-{os.getppid()}-0000beef"
    elsewhere = tmp_path / f"another-host-{int(gone.stdout)}-12345678"
    for folder in (dead, alive, elsewhere):
        (folder / "media").mkdir(parents=True)
        (folder / "media" / ".clip.mp4.1.partial").write_bytes(b"half an mp4")
    mine = scratch_folder(tmp_path)
    assert mine.is_dir() and mine.name.startswith(f"{host}-{os.getpid()}-")
    assert not dead.exists() and alive.exists() and elsewhere.exists()
