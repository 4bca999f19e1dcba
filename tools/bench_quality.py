"""Quality scoring cost per clip, on the CPU, as a worker pays it: ``python -m tools.bench quality --out q.json``.

Clips at the reference size (768x512, 97 frames at 25 fps): the synthetic talking face (a face on every
frame: the full work) and a noise clip (no face: what the demo's random weights give); and a long talking
face (20 s) scored as windows of 121 frames (per-window scores and seams), as a long item is. Each is scored
``repeat`` times by one ``quality.worker`` child, as a render worker does; the first call, which also loads
the models, is reported apart. ``cpu_seconds_per_minute_of_video`` is the figure to hold against a worker's
render time per minute of video. The figure to compare is the CPU seconds per clip against the GPU's seconds
per clip (7.9 s on one H200 in a worker's steady state, BENCHMARKS.md): while scoring takes less, the
scorer keeps up on one core and the worker never waits for it.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from quality import face
from quality.process import ScoringProcess
from tools.reference_clip import REFERENCE
from tools.talking_clip import AUDIO_RATE, make_clip, speech_envelope, voice, write_clip

WIDTH, HEIGHT, FRAMES, FPS = REFERENCE.width, REFERENCE.height, REFERENCE.num_frames, REFERENCE.frame_rate
LONG_FRAMES, WINDOW_FRAMES = 500, 121  # the long clip: 20 s, windows 2, 3, ... begin every 121 frames
GPU_SECONDS_PER_CLIP = 7.9  # H200, worker steady state (BENCHMARKS.md)


def run(out: Path, repeat: int = 3) -> dict:
    folder = out.parent
    clips = {"talking_face": folder / "talking.mp4", "no_face": folder / "noise.mp4", "long": folder / "long.mp4"}
    make_clip(clips["talking_face"], WIDTH, HEIGHT, FRAMES, FPS)
    make_clip(clips["long"], WIDTH, HEIGHT, LONG_FRAMES, FPS)
    frames = {"talking_face": FRAMES, "no_face": FRAMES, "long": LONG_FRAMES}
    boundaries = {"long": list(range(WINDOW_FRAMES, LONG_FRAMES, WINDOW_FRAMES))}
    noise = np.random.default_rng(0).integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    write_clip(clips["no_face"], list(noise), FPS, voice(speech_envelope(FRAMES / FPS, 0), 0))
    scorer = ScoringProcess()
    report: dict = {"clip": f"{WIDTH}x{HEIGHT}, {FRAMES} frames", "cpus": os.cpu_count(), "audio_rate": AUDIO_RATE}
    report["face_models"] = face.chosen()
    try:
        for name, path in clips.items():
            timings = []
            for _ in range(repeat + 1):
                started = time.perf_counter()
                record = scorer.score(str(path), None, boundaries.get(name))
                timings.append((record["seconds"], time.perf_counter() - started))
            cpu = statistics.median(t[0] for t in timings[1:])
            report[name] = {
                "first_call_cpu_seconds": timings[0][0],
                "cpu_seconds_per_clip": cpu,
                "wall_seconds_per_clip": statistics.median(t[1] for t in timings[1:]),
                "cpu_seconds_per_minute_of_video": round(cpu / (frames[name] / FPS) * 60, 2),
                "share_of_gpu_time": round(cpu / GPU_SECONDS_PER_CLIP * FRAMES / frames[name], 3),
                "record": record,
            }
    finally:
        scorer.close()
    return report
