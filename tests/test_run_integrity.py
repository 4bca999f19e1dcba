"""Run folders that never lie and never clobber: one driver per run (claim and lease), foreign folders refused."""

from __future__ import annotations

import multiprocessing
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from runstore import claim
from runstore.claim import Lease, RunTaken
from runstore.results import RESULT_SCHEMA, read_results


def _race(run: str, n: int) -> list[str]:
    """``n`` drivers claim ``run`` at the same instant; each reports 'won' or its refusal."""
    barrier = threading.Barrier(n)
    outcome: list[str] = []
    leases = [Lease(run) for _ in range(n)]

    def go(lease: Lease) -> None:
        barrier.wait()
        try:
            lease.acquire()
            outcome.append("won")
        except RunTaken as e:
            outcome.append(str(e))

    threads = [threading.Thread(target=go, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lease in leases:
        lease.release()
    return outcome


def test_of_drivers_started_together_exactly_one_takes_the_run_every_time(tmp_path):
    for i in range(50):
        outcome = _race(str(tmp_path / f"run{i}"), 4)
        assert outcome.count("won") == 1, outcome
        for refusal in (o for o in outcome if o != "won"):
            assert refusal.startswith(f"run {tmp_path / f'run{i}'} is being rendered by ")
            assert refusal.endswith("; wait, or pass --take-over if that driver is gone")


def _claim_in_process(run: str, start, results) -> None:
    start.wait()
    try:
        Lease(run).acquire()  # never released: the lease stays live while the beat file is fresh
        results.put("won")
    except RunTaken:
        results.put("refused")


def test_separate_processes_racing_for_a_run_leave_one_winner(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for i in range(10):
        start, results = ctx.Event(), ctx.Queue()
        args = (str(tmp_path / f"r{i}"), start, results)
        procs = [ctx.Process(target=_claim_in_process, args=args) for _ in range(3)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(30)
        assert sorted(results.get() for _ in procs) == ["refused", "refused", "won"]


def test_a_stale_or_taken_over_claim_fences_the_old_driver_and_its_rows(tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    old = Lease(run)
    old.acquire()
    try:
        Lease(run).acquire()
        raise AssertionError("a live lease was taken without --take-over")
    except RunTaken as e:
        assert f"{old.holder.host}/{old.holder.pid}" in str(e)
    results = tmp_path / "run" / "results"
    results.mkdir()
    row = {name: None for name in RESULT_SCHEMA.names} | {"item_id": "a", "status": "failed", "attempt": 1}
    attempt_file = results / f"{old.token}-shard-00000-attempt-01.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=RESULT_SCHEMA), attempt_file)
    assert read_results(str(results)).num_rows == 1
    new = Lease(run)
    new.acquire(take_over=True)
    assert new.holds() and not old.holds()
    assert read_results(str(results)).num_rows == 0  # the fenced session's rows are not counted
    old.release()  # the old driver's exit leaves the new claim alone
    assert new.holds()
    new.release()
    monkeypatch.setattr(claim, "STALE_SECONDS", -1.0)  # a driver that stopped beating
    gone = Lease(run)
    gone.acquire()
    gone._stop.set()
    Lease(run).acquire()
    assert not gone.holds()


def test_a_foreign_folder_is_refused_and_keeps_every_byte(tmp_path, capsys):
    from ray_jobs.render import EXIT_BAD_INPUT, main

    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "results").mkdir()
    files = {"run.json": b'{"mine": 1}', "videos/x.mp4": b"not ours", "results/notes.txt": b"hello"}
    for name, data in files.items():
        (out / name).write_bytes(data)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("items: []\n")
    assert main([str(manifest), "--out", str(out), "--bundle", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{out} is not empty and not an ltx-batch run folder" in err
    assert "run.json" in err and "videos/x.mp4" in err and "results/notes.txt" in err
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_a_foreign_file_under_results_is_not_read_as_parquet(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("hello")
    assert read_results(str(results)).num_rows == 0
