"""Failure drill on one machine: a Ray head and two worker nodes, then node loss and driver loss.

    python -m tools.drill --bundle ~/.cache/ltx-batch/tiny-bundle   # or: make drill

1. Starts a head (no CPUs) and two worker nodes (one CPU each) as separate ``ray start`` processes on
   this machine, all under one private temp dir.
2. Submits a tiny-bundle manifest with ``ray job submit``, kills one worker node's raylet once the first
   item is done, and checks the job still succeeds with every item ``ok`` exactly once.
3. Submits a second run, SIGKILLs its driver mid-run, resumes it with a second ``ray job submit
   --resume``, and checks the same.
4. Kills every process it started, found by its private temp dir in their command lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from tools.demo import QUICK

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "manifests" / "examples" / "lesson"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """Ray nodes as separate processes on this machine; every process started is tracked."""

    temp_dir: Path
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    worker_ports: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict:
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
        }

    def _ray(self, *args: str) -> None:
        done = subprocess.run(["ray", *args], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"ray {args[0]} failed: {(done.stdout + done.stderr)[-2000:]}")

    def start(self, workers: int = 2, tries: int = 3) -> None:
        """Start the nodes; a port taken between choosing and binding it means a clean restart on new ports."""
        for attempt in range(tries):
            try:
                return self._start(workers)
            except RuntimeError:
                self.stop()
                self.worker_ports.clear()
                self.gcs_port, self.dashboard_port = free_port(), free_port()
                if attempt == tries - 1:
                    raise

    def _start(self, workers: int) -> None:
        def own_ports() -> list[str]:
            """Every node on one machine needs its own agent ports, or the agents fight over the defaults."""
            names = (
                "--dashboard-agent-listen-port",
                "--dashboard-agent-grpc-port",
                "--metrics-export-port",
                "--runtime-env-agent-port",
                "--object-manager-port",
            )
            return [arg for name in names for arg in (name, str(free_port()))]

        common = ["--temp-dir", str(self.temp_dir), "--disable-usage-stats"]
        self._ray(
            "start",
            "--head",
            "--port",
            str(self.gcs_port),
            "--num-cpus",
            "0",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            *own_ports(),
            *common,
        )
        for _ in range(workers):
            port = free_port()
            self.worker_ports.append(port)
            self._ray(
                "start",
                "--address",
                f"127.0.0.1:{self.gcs_port}",
                "--num-cpus",
                "1",
                "--node-manager-port",
                str(port),
                *own_ports(),
                *common,
            )

    def processes(self) -> list[psutil.Process]:
        marker = str(self.temp_dir)
        found = []
        for p in psutil.process_iter(["cmdline", "environ"]):
            try:
                text = " ".join(p.info["cmdline"] or [])
                if marker in text or (p.info["environ"] or {}).get("LTX_DRILL") == marker:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def raylet_of(self, node_manager_port: int) -> psutil.Process:
        for p in self.processes():
            text = " ".join(p.cmdline())
            if "raylet/raylet" in text and f"--node_manager_port={node_manager_port}" in text:
                return p
        raise RuntimeError(f"no raylet on port {node_manager_port}")

    def submit(self, args: list[str], log: Path) -> str:
        """``ray job submit --no-wait``, retried while the head's job agent is still starting; the job id."""
        command = [
            "ray",
            "job",
            "submit",
            "--address",
            self.dashboard,
            "--working-dir",
            str(ROOT),
            "--runtime-env",
            str(ROOT / "cluster" / "runtime_env.yaml"),
            "--no-wait",
            "--",
            "python",
            "-m",
            "ray_jobs.render",
            *args,
        ]
        for _ in range(60):
            done = subprocess.run(command, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
            log.write_text(done.stdout + done.stderr)
            match = re.search(r"Job '(raysubmit_\w+)' submitted successfully", done.stdout + done.stderr)
            if match:
                return match.group(1)
            time.sleep(1)
        raise RuntimeError(f"could not submit the job: {log.read_text()[-2000:]}")

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def wait_job(self, job_id: str, log: Path, timeout: float = 600) -> str:
        """Follow the job's logs into ``log`` until it ends; its final status (SUCCEEDED, FAILED, ...)."""
        with open(log, "a") as out:
            subprocess.run(
                ["ray", "job", "logs", "--follow", "--address", self.dashboard, job_id],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        status = ["UNKNOWN"]

        def ended() -> bool:
            done = subprocess.run(
                ["ray", "job", "status", "--address", self.dashboard, job_id],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            found = re.findall(r"Job '\w+' (succeeded|failed|stopped)", done.stdout + done.stderr)
            status[0] = found[-1].upper() if found else status[0]
            return bool(found)

        wait_for(ended, 120, f"job {job_id} to end")
        return status[0]

    def stop(self) -> None:
        """Kill every process this cluster started, by pid."""
        for _ in range(3):
            for p in self.processes():
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(signal.SIGKILL)
            time.sleep(0.5)


def ok_counts(run: Path) -> Counter:
    from runstore.results import read_results
    from runstore.run_folder import RunFolder

    try:
        rows = read_results(RunFolder(str(run)).results_uri).select(["item_id", "status"]).to_pylist()
    except OSError:  # a file moved into place mid-listing; look again next time
        return Counter()
    return Counter(r["item_id"] for r in rows if r["status"] == "ok")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(f"timed out waiting for {what}")


def write_manifest(folder: Path, items: int) -> Path:
    names = ("en.ogg", "de.mp3", "es.m4a")
    body = {
        "run_seed": 5,
        "defaults": {"prompt": "A presenter", "image": str(LESSON / "presenter.png")},
        "items": [{"id": f"drill-{i:02d}", "audio": str(LESSON / names[i % 3])} for i in range(items)],
    }
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def node_loss(cluster: LocalCluster, manifest: Path, run: Path, bundle: str) -> dict:
    log = run.with_suffix(".log")
    job = cluster.submit([str(manifest), "--out", str(run), "--bundle", bundle, "--shard-size", "2", *QUICK], log)
    wait_for(lambda: ok_counts(run), 300, "the first finished item")
    victim = cluster.raylet_of(cluster.worker_ports[0])
    victim.send_signal(signal.SIGKILL)
    status = cluster.wait_job(job, log)
    return {"job": job, "status": status, "killed_raylet_pid": victim.pid, "ok": dict(ok_counts(run))}


def driver_loss(cluster: LocalCluster, manifest: Path, run: Path, bundle: str) -> dict:
    args = [str(manifest), "--out", str(run), "--bundle", bundle, "--shard-size", "1", *QUICK]
    first = cluster.submit(args, run.with_suffix(".first.log"))
    wait_for(lambda: sum(ok_counts(run).values()) >= 1, 300, "the first finished item")
    drivers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if {"ray_jobs.render", str(run)} <= set(p.info["cmdline"] or []) and "job" not in p.info["cmdline"]
    ]
    for p in drivers:
        p.send_signal(signal.SIGKILL)
    done_before = sum(ok_counts(run).values())
    first_status = cluster.wait_job(first, run.with_suffix(".first.log"), timeout=120)
    log = run.with_suffix(".resume.log")
    resumed = cluster.submit(["--resume", str(run)], log)
    status = cluster.wait_job(resumed, log)
    return {
        "killed_driver_pids": [p.pid for p in drivers],
        "first_job_status": first_status,
        "ok_before_resume": done_before,
        "status": status,
        "ok": dict(ok_counts(run)),
    }


DRILLS = {"node_loss": node_loss, "driver_loss": driver_loss}


def run_drill(bundle: str, workdir: Path, items: int = 6, drills: tuple[str, ...] = tuple(DRILLS)) -> dict:
    # Ray's socket paths live under its temp dir and must stay short (a Unix socket path is ~107 bytes).
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="ltxd-", dir="/tmp")))
    manifest = write_manifest(workdir, items)
    report: dict[str, object] = {}
    try:
        cluster.start(workers=2)
        for name in drills:
            report[name] = DRILLS[name](cluster, manifest, workdir / f"run-{name.replace('_', '-')}", bundle)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    report["leftover_processes"] = len(cluster.processes())
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a tiny bundle folder (python -m fixtures.random_bundle DIR)")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--drills", nargs="+", choices=tuple(DRILLS), default=tuple(DRILLS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ltx-drill-") as folder:
        bundle = str(Path(args.bundle).expanduser().resolve())  # the jobs run in a copy of the working dir
        report = run_drill(bundle, Path(folder), args.items, tuple(args.drills))
    print(json.dumps(report, indent=1))
    expected = {f"drill-{i:02d}": 1 for i in range(args.items)}
    good = all(report[k]["ok"] == expected and report[k]["status"] == "SUCCEEDED" for k in args.drills)
    return 0 if good and not report["leftover_processes"] else 1


if __name__ == "__main__":
    sys.exit(main())
