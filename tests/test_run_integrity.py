"""Run folders that never lie and never clobber: one driver per run (claim and lease), foreign folders refused,
every run folder readable (an all-invalid run too)."""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LESSON, SHORT_RENDER, report_cards

from runstore import claim
from runstore.claim import Lease, RunTaken
from runstore.results import RESULT_SCHEMA, read_results
from runstore.run_folder import RunFolder


def _race(run: str, n: int) -> list[str]:
    """``n`` drivers claim ``run`` at the same instant; each reports 'won' or its refusal."""
    barrier = threading.Barrier(n)
    outcome: list[str] = []
    leases = [Lease(RunFolder(run)) for _ in range(n)]

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


def _claim_in_process(run: str, start, results, told) -> None:
    start.wait()
    try:
        Lease(RunFolder(run)).acquire()  # never released: the lease stays live while the beat file is fresh
        results.put("won")
    except RunTaken:
        results.put("refused")
    told.wait(30)  # alive until every process has tried: a holder whose process exited is stale, rightly


def test_separate_processes_racing_for_a_run_leave_one_winner(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for i in range(10):
        start, results, told = ctx.Event(), ctx.Queue(), ctx.Event()
        args = (str(tmp_path / f"r{i}"), start, results, told)
        procs = [ctx.Process(target=_claim_in_process, args=args) for _ in range(3)]
        for p in procs:
            p.start()
        start.set()
        outcomes = sorted(results.get(timeout=30) for _ in procs)
        told.set()
        for p in procs:
            p.join(30)
        assert outcomes == ["refused", "refused", "won"]


def test_a_stale_or_taken_over_claim_fences_the_old_driver_and_its_rows(tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    old = Lease(RunFolder(run))
    old.acquire()
    try:
        Lease(RunFolder(run)).acquire()
        raise AssertionError("a live lease was taken without --take-over")
    except RunTaken as e:
        assert f"{old.holder.host}/{old.holder.pid}" in str(e)
    results = tmp_path / "run" / "results"
    results.mkdir()
    row = {name: None for name in RESULT_SCHEMA.names} | {"item_id": "a", "status": "failed", "attempt": 1}
    attempt_file = results / f"{old.token}-shard-00000-attempt-01.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=RESULT_SCHEMA), attempt_file)
    assert read_results(str(results)).num_rows == 1
    new = Lease(RunFolder(run))
    new.acquire(take_over=True)
    assert new.holds() and not old.holds()
    assert read_results(str(results)).num_rows == 0  # the fenced session's rows are not counted
    old.release()  # the old driver's exit leaves the new claim alone
    assert new.holds()
    new.release()
    monkeypatch.setattr(claim, "STALE_SECONDS", -1.0)  # a driver that stopped beating
    gone = Lease(RunFolder(run))
    gone.acquire()
    gone._stop.set()
    Lease(RunFolder(run)).acquire()
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


def _manifest(path: Path, ids: list[str]) -> Path:
    defaults = {"prompt": "A presenter", "image": str(LESSON / "presenter.png"), "audio": str(LESSON / "en.ogg")}
    path.write_text(yaml.safe_dump({"defaults": defaults, "items": [{"id": i} for i in ids]}))
    return path


def test_two_full_drivers_started_together_one_renders_and_a_resume_meanwhile_is_refused(
    local_ray, tiny_bundle, tmp_path, capsys
):
    """The claim-level races above repeat many times; here the whole driver, once: two renders released by a
    barrier at the same instant on one --out, and a resume while the winner renders."""
    from ray_jobs.cli import status_lines
    from ray_jobs.render import EXIT_BAD_INPUT, main

    run = tmp_path / "run"
    args = [str(_manifest(tmp_path / "m.yaml", ["a", "b"])), "--out", str(run), "--bundle"]
    args += [str(Path(tiny_bundle.checkpoint_path).parent), *SHORT_RENDER]
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def driver() -> None:
        barrier.wait()
        codes.append(main(args))

    drivers = [threading.Thread(target=driver) for _ in range(2)]
    for t in drivers:
        t.start()
    deadline = time.monotonic() + 120
    while not ((run / "plan.parquet").is_file() and (run / "lease.json").is_file()):
        assert time.monotonic() < deadline and any(t.is_alive() for t in drivers), "no driver held the run"
        time.sleep(0.02)
    resumed = main(["--resume", str(run)])
    for t in drivers:
        t.join(300)
    assert sorted(codes) == [0, EXIT_BAD_INPUT] and resumed == EXIT_BAD_INPUT
    refusals = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(refusals) == 2, refusals
    message = rf"error: run {re.escape(str(run))} is being rendered by \S+/\d+ since \S+; wait, or pass --take-over if "
    assert all(re.fullmatch(message + "that driver is gone", refusal) for refusal in refusals), refusals
    assert status_lines(str(run))[0].endswith(": 2 items, 2 ok, 0 failed, 0 not rendered yet")


def _all_invalid_manifest(folder: Path, kind: str) -> Path:
    rows = [{"id": "a", "audio": str(folder / "gone.wav"), "prompt": "x"}, {"id": "b", "audio": None, "prompt": None}]
    if kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), folder / "m.parquet")
        return folder / "m.parquet"
    (folder / "m.yaml").write_text(yaml.safe_dump({"items": [{k: v for k, v in r.items() if v} for r in rows]}))
    return folder / "m.yaml"


@pytest.mark.parametrize("kind", ["yaml", "parquet"])
def test_an_all_invalid_run_is_still_a_run_that_status_report_and_resume_read(
    kind, local_ray, tiny_bundle, tmp_path, capsys
):
    from ray_jobs.cli import status_lines
    from ray_jobs.render import main
    from ray_jobs.report import build_report
    from runstore.plan import PLAN_SCHEMA

    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    manifest = _all_invalid_manifest(tmp_path, kind)
    assert main([str(manifest), "--out", str(run), "--bundle", bundle, "--skip-invalid", *SHORT_RENDER]) == 1
    assert "0 ok, 2 not ok, 2 items in the run" in capsys.readouterr().out
    assert pq.read_schema(run / "plan.parquet").remove_metadata() == PLAN_SCHEMA
    [rows] = list((run / "results").glob("*.parquet"))
    assert pq.read_schema(rows).remove_metadata() == RESULT_SCHEMA
    lines = status_lines(str(run))
    assert lines[0].endswith(": 2 items, 0 ok, 2 failed (2 with invalid input), 0 not rendered yet")
    assert any("InvalidInput" in line and "field 'audio'" in line for line in lines)
    page = build_report(str(run)).read_text()
    assert [card["id"] for card in report_cards(page)] == ["a", "b"]
    assert main(["--resume", str(run)]) == 1
    out = capsys.readouterr().out
    assert "2 invalid item(s) not rendered" in out and "0 ok, 2 not ok, 2 items in the run" in out
