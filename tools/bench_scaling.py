"""Scaling of the Ray driver over the GPUs of one host, with reference-size clips and weights.

    python -m tools.bench scaling --bundle DIR --gpus 1 2 4 --clips-per-gpu 3 --out scaling.json

For each GPU count N it writes one manifest of ``N x clips-per-gpu`` reference clips (the same clip
settings as ``reference_clip``, a prompt of their own each) and runs the real command,
``python -m ray_jobs.render MANIFEST --out RUN --actors N --shard-size S`` (the manifest asks for
``fp8-scaled``), on a local Ray that sees every GPU of the host. Shards of 1 (the default here) keep every
worker busy to the end, which is what scaling asks; but a shard's last mp4 is encoded while its worker
waits, so with shards of 1 no mux overlaps the next clip: ``--shard-size 8`` (the driver's own default) is
the product's steady state. From the run's results table it takes
the rendering window (first item started to last item finished) and reports clips per hour over that
window (steady state: every worker already loaded and warmed) and over the command's whole wall time
(Ray start, loads, warm-up included).
Scaling efficiency is clips per hour at N divided by N times clips per hour at the smallest N.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from runstore.results import read_results
from runstore.run_folder import RunFolder
from tools.reference_clip import PROMPT, ensure_bundle, reference_defaults, write_stereo_speech

REPO = Path(__file__).resolve().parents[1]


def write_manifest(path: Path, bundle: Path, clips: int) -> Path:
    manifest = {
        "run_seed": 7,
        "model": {"bundle": str(bundle), "quantization": "fp8-scaled"},
        "defaults": reference_defaults(),
        "items": [{"id": f"clip-{i:03d}", "prompt": PROMPT.format(i)} for i in range(clips)],
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def render_command(manifest: Path, run: Path, *options: str) -> list[str]:
    """The product's own command for ``manifest`` into the run folder ``run``."""
    return [sys.executable, "-m", "ray_jobs.render", str(manifest), "--out", str(run), *options]


def measure(gpus: int, clips: int, bundle: Path, work: Path, shard_size: int = 1) -> dict:
    manifest = write_manifest(work / f"scaling-{gpus}.yaml", bundle, clips)
    run = work / f"run-{gpus}gpu"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run each time, never a resume of an old one
    command = render_command(manifest, run, "--actors", str(gpus), "--shard-size", str(shard_size))
    start = time.perf_counter()
    with open(work / f"run-{gpus}gpu.log", "w") as log:
        code = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    rows = [r for r in read_results(RunFolder(str(run)).results_uri).to_pylist() if r["status"] == "ok"]
    if not rows:
        raise RuntimeError(f"no clip rendered on {gpus} GPU(s) (exit {code}); see {work}/run-{gpus}gpu.log")
    window = (max(r["finished_at"] for r in rows) - min(r["started_at"] for r in rows)).total_seconds()
    item_s = [(r["finished_at"] - r["started_at"]).total_seconds() for r in rows]
    return {
        "gpus": gpus,
        "exit_code": code,
        "clips": clips,
        "shard_size": shard_size,
        "ok": len(rows),
        "hosts_devices": sorted({f"{r['host']} {r['device']}" for r in rows}),
        "command_wall_s": wall,
        "render_window_s": window,
        "item_s_median": statistics.median(item_s),
        "clips_per_hour_window": 3600 * len(rows) / window,
        "clips_per_hour_wall": 3600 * len(rows) / wall,
    }


def run(bundle: str, gpu_counts: list[int], clips_per_gpu: int, out: Path, shard_size: int = 1) -> dict:
    folder, made_s = ensure_bundle(Path(bundle))
    write_stereo_speech()
    rows = []
    for n in gpu_counts:
        rows.append(measure(n, n * clips_per_gpu, folder.resolve(), out.parent, shard_size))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        factor = r["gpus"] / base["gpus"]
        r["efficiency_window"] = r["clips_per_hour_window"] / (factor * base["clips_per_hour_window"])
        r["efficiency_wall"] = r["clips_per_hour_wall"] / (factor * base["clips_per_hour_wall"])
    return {"rows": rows, "bundle_written_s": made_s}
