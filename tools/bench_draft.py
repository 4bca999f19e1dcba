"""The draft figures of ``python -m tools.bench clip --part ours``: the reference clips rendered again with the
distilled pipeline (8 unguided stage-1 steps with the distilled LoRA, then the same upsample and stage 2) on
the same resident engine, in the same invocation as the two-stage figures they are compared with.

Taken as the two-stage ones are: a warm-up of the draft shapes, the drafts' prompts encoded up front as a
worker encodes a shard's, one untimed clip, then serial walls with
per-phase medians and peak memory, then a worker's steady state (each mp4 written in the background while
the next clip renders). The issue's targets: a draft <= 3.0 s per clip or >= 4x the two-stage clips per
hour, with no more GPU memory than the two-stage worker. Runs on any device (CPU with the tiny bundle too).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

from ltxcore.engine import Engine
from ltxcore.recipes import prompt_pair
from ltxcore.request import RenderRequest
from tools.bench_worker import steady_state
from tools.timing import GIB, medians, synchronize


def measure_draft(engine: Engine, requests: list[RenderRequest], out: Path, final: dict) -> dict:
    """Drafts of ``requests`` (the first untimed) beside ``final``, the two-stage report of the same run
    (``wall_s_median``, ``steady_s_per_clip``, ``peak_gib``)."""
    drafts = [replace(request, pipeline="distilled") for request in requests]
    report: dict = {"pipeline": "distilled", "stage_1_steps": 8}
    report["warm_up_s"] = engine.warm_up(drafts[0])
    engine.warm_prompts([prompt_pair(r) for r in drafts])  # as a worker does per shard (the finals' are cached)
    walls, phases, peaks = [], [], []
    for i, request in enumerate(drafts):
        synchronize(engine.device)
        start = time.perf_counter()
        result = engine.render(request, out.parent / f"draft-{i}.mp4")
        if i > 0:
            walls.append(time.perf_counter() - start)
            phases.append(result.timings)
            peaks.append(result.peak_memory)
    report["clips"] = len(walls)
    report["wall_s_median"] = statistics.median(walls)
    report["wall_s_all"] = walls
    report["phases_s_median"] = medians(phases)
    report["peak_gib_by_phase_max"] = {k: max(p[k] for p in peaks) / GIB for k in peaks[0]}
    report["peak_gib"] = max(report["peak_gib_by_phase_max"].values(), default=0.0)
    report["steady_s_per_clip"] = steady_state(engine, drafts[1:], out.parent, "draft-steady")["steady_s_per_clip"]
    report["clips_per_hour"] = 3600 / report["steady_s_per_clip"]
    report["final_clips_per_hour"] = 3600 / final["steady_s_per_clip"]
    report["clips_per_hour_vs_final"] = final["steady_s_per_clip"] / report["steady_s_per_clip"]
    report["serial_wall_vs_final"] = final["wall_s_median"] / report["wall_s_median"]
    report["peak_gib_over_final"] = report["peak_gib"] - final["peak_gib"]
    return report
