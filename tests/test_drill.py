"""The multi-node failure drill: head + two worker nodes as separate `ray start` processes on this machine.
A worker node's raylet is killed mid-run, then a second run's driver is killed and resumed."""

from __future__ import annotations

from pathlib import Path

from tools.drill import run_drill


def test_node_loss_and_driver_loss_end_with_every_item_ok_exactly_once(tiny_bundle, tmp_path):
    report = run_drill(str(Path(tiny_bundle.checkpoint_path).parent), tmp_path, items=6)
    expected = {f"drill-{i:02d}": 1 for i in range(6)}
    assert report["node_loss"]["status"] == "SUCCEEDED", report
    assert report["node_loss"]["ok"] == expected
    loss = report["driver_loss"]
    assert loss["killed_driver_pids"] and loss["ok_before_resume"] < 6, report
    assert loss["first_job_status"] == "FAILED" and loss["status"] == "SUCCEEDED", report
    assert loss["ok"] == expected
    assert report["leftover_processes"] == 0
