"""The multi-node failure drill: head + two worker nodes as separate `ray start` processes on this machine,
and a worker node's raylet killed mid-run. ``make drill`` also kills a ``ray job submit`` driver and resumes
its run; here the driver's loss is covered by test_ray_driver.py, which kills a local driver and resumes."""

from __future__ import annotations

from pathlib import Path

from tools.drill import run_drill


def test_node_loss_ends_with_every_item_ok_exactly_once(tiny_bundle, tmp_path):
    report = run_drill(str(Path(tiny_bundle.checkpoint_path).parent), tmp_path, items=6, drills=("node_loss",))
    assert report["node_loss"]["status"] == "SUCCEEDED", report
    assert report["node_loss"]["killed_raylet_pid"] > 0
    assert report["node_loss"]["ok"] == {f"drill-{i:02d}": 1 for i in range(6)}
    assert report["leftover_processes"] == 0
