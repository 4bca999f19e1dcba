"""A render worker's steady state on one GPU: ``python -m tools.bench clip --bundle DIR --part worker``.

One resident engine serves finals and drafts, as a worker whose shards mix both does. After a warm-up of
both pipelines and a shard's prompt encoding (finals' and drafts' prompt pairs, as ``warm_prompts`` does
per shard), each pipeline is timed in a worker's steady state (each mp4 written in the background while the
next clip renders), without quality scoring, then with one and with ``SCORERS`` scoring processes.
Scoring runs as the worker runs it (``ray_jobs.worker_scoring.ClipScorer``, started on each clip after its
mux), and each clip's row is taken once the next clip is rendered, by the worker's own loop
(``ray_jobs.device_turns.render_then_finish`` and ``written_then_scores``): the seconds spent looking for the
scores are the worker's ``quality_wait``, a clip whose scores were not ready yet is "late", and the
seconds from the last row until every score is in measure the scorer's backlog.

The figures it answers: the draft's peak memory against the final's in one worker (issue 13: no extra), and
whether the GPU ever waits for scoring, or is slowed by it (issue 16).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from ltxcore.recipes import prompt_pair
from ltxcore.render_result import RenderResult
from ltxcore.request import RenderRequest
from ray_jobs.device_turns import render_then_finish
from ray_jobs.worker_scoring import SCORERS, ClipScorer, PendingScore, written_then_scores
from tools.reference_clip import reference_request
from tools.timing import GIB, peak_gib_since_reset, reset_peak


def steady_state(
    engine: Engine, requests: list[RenderRequest], folder: Path, prefix: str, scorer: ClipScorer | None = None
) -> dict:
    """A worker's steady state over ``requests``, through the worker's own loop (``ray_jobs.actor``: each mp4,
    ``folder/PREFIX-N.mp4``, written in the background while the next clip renders): seconds per clip, the peak
    memory, and (with ``scorer``) what the worker's rows saw of the scores."""
    phase_peaks: dict[str, float] = {}
    pending: list[PendingScore] = []

    def start(entry: tuple[int, RenderRequest]) -> Callable[[], tuple[RenderResult, dict | None]]:
        i, request = entry
        if i + 1 < len(requests):
            engine.audio_ahead.ahead(requests[i + 1])  # as the worker does (``RenderActor._read_ahead``)
        video = folder / f"{prefix}-{i}.mp4"
        result = engine.render(request, video, background_mux=True)
        for name, value in result.peak_memory.items():
            phase_peaks[name] = max(phase_peaks.get(name, 0.0), value / GIB)
        scoring = scorer.start(video, request.image, result.muxing) if scorer else None
        if scoring is not None:
            pending.append(scoring)
        return lambda: (result, written_then_scores(result, scoring))

    reset_peak(engine.device)
    started = time.perf_counter()
    rows = list(render_then_finish(enumerate(requests), start))
    seconds = (time.perf_counter() - started) / len(requests)
    report: dict = {
        "steady_s_per_clip": seconds,
        "clips_per_hour": 3600 / seconds,
        "peak_gib": peak_gib_since_reset(engine.device),
        "peak_gib_by_phase": phase_peaks,
    }
    if scorer is not None:
        settling = time.perf_counter()
        scorer.settle()
        report["scores_done_s_after_last_row"] = time.perf_counter() - settling  # the scorer's backlog
        records = [p.record() or {} for p in pending]
        report["quality_wait_s_max"] = max(result.timings["quality_wait"] for result, _ in rows)
        report["late_scores"] = sum(quality is None for _, quality in rows)  # rows taken before their scores
        report["scoring_cpu_s_per_clip"] = statistics.median(r.get("seconds", 0.0) for r in records)
        report["scoring_reasons"] = sorted({str(r.get("reason")) for r in records})
    return report


def measure_worker(folder: Path, clips: int, out: Path, transformer: str = "dev") -> dict:
    """Finals and drafts on a ``dev`` worker; drafts alone on a ``distilled`` one (the released distilled
    checkpoint, no LoRA), which renders nothing else."""
    bundle = ModelBundle.from_folder(folder, quantization="fp8-scaled", transformer=transformer)
    engine = Engine(bundle, "cuda", compile=True)
    finals = [reference_request(i) for i in range(clips + 1)]
    requests = {"final": finals, "draft": [replace(r, pipeline="distilled") for r in finals]}
    if transformer == "distilled":
        del requests["final"]
    report: dict = {"part": "worker", "transformer": transformer, "clips": clips}
    report["warm_up_s"] = {name: engine.warm_up(batch[0]) for name, batch in requests.items()}
    torch.cuda.synchronize()
    report["resident_gib_after_warm_up"] = torch.cuda.memory_allocated() / GIB
    reset_peak(engine.device)
    engine.warm_prompts([prompt_pair(r) for batch in requests.values() for r in batch])
    report["shard_prompt_encode_peak_gib"] = peak_gib_since_reset(engine.device)
    for batch in requests.values():  # one untimed clip each, so mux and scorer threads are warm too
        engine.render(batch[0], out.parent / f"first-{batch[0].pipeline}.mp4")
    scorers = {count: ClipScorer(count) for count in sorted({1, SCORERS})}
    try:
        for name, batch in requests.items():
            plain = steady_state(engine, batch[1:], out.parent, f"{batch[0].pipeline}-plain")
            report[name] = {"plain": plain}
            for count, scorer in scorers.items():
                scored = steady_state(engine, batch[1:], out.parent, f"{batch[0].pipeline}-scored", scorer)
                scored["scored_vs_plain_s_per_clip"] = scored["steady_s_per_clip"] / plain["steady_s_per_clip"]
                report[name][f"scored_{count}_scorers"] = scored
    finally:
        for scorer in scorers.values():
            scorer.close()
    if "final" in report:
        final, draft = report["final"]["plain"], report["draft"]["plain"]
        report["draft_peak_gib_over_final"] = draft["peak_gib"] - final["peak_gib"]
        report["draft_vs_final_clips_per_hour"] = final["steady_s_per_clip"] / draft["steady_s_per_clip"]
    return report
