"""CPU cost of the reference clip's mp4 (97 frames, 768x512, H.264 + AAC) per encoder setting, no GPU needed:

    python -m tools.bench mux --out mux.json

Two contents bound what a worker encodes: ``noise`` (every pixel random, the worst case for H.264, about
what a random-weight bundle decodes to) and ``smooth`` (a moving gradient with light grain, closer to a
real video). Per setting: CPU seconds of this process (every encoder thread counted), wall seconds and
the file's size, median of ``--repeat``; on a machine whose cores are shared, CPU seconds are the figure
that carries over.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ltxcore.media import AudioClip
from ltxcore.mp4 import H264Settings, write_mp4

FRAMES, HEIGHT, WIDTH, FPS = 97, 512, 768, 25.0
CANDIDATES = [
    H264Settings(),  # the default
    H264Settings(preset="superfast"),
    H264Settings(preset="ultrafast"),
    H264Settings(preset="faster"),
    H264Settings(crf=23),
    H264Settings(threads=2),
    H264Settings(threads=4),
]


def clip_frames(content: str) -> torch.Tensor:
    rng = np.random.default_rng(0)
    if content == "noise":
        return torch.from_numpy(rng.integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8))
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for i in range(FRAMES):
        base = (x // 3 + y // 4 + 2 * i) % 256
        grain = rng.integers(0, 12, (HEIGHT, WIDTH))
        frames[i] = np.stack([base, (base + 85) % 256, (255 - base)], axis=-1) + grain[..., None]
    return torch.from_numpy(frames)


def measure(settings: H264Settings, frames: torch.Tensor, audio: AudioClip, folder: Path, repeat: int) -> dict:
    cpu, wall, size = [], [], 0
    for i in range(repeat):
        path = folder / f"{settings.preset}-{settings.crf}-{settings.threads}-{i}.mp4"
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        write_mp4(path, [frames], FPS, audio, FRAMES, settings)
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
        size = path.stat().st_size
        path.unlink()
    return {
        "preset": settings.preset,
        "crf": settings.crf,
        "threads": settings.threads,
        "cpu_s": statistics.median(cpu),
        "wall_s": statistics.median(wall),
        "mbytes": size / 1e6,
    }


def run(repeat: int) -> dict:
    rate = 48000
    t = np.arange(round(FRAMES / FPS * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio = AudioClip(np.stack([tone, tone]), rate)
    report: dict = {"frames": FRAMES, "height": HEIGHT, "width": WIDTH, "cpus": os.cpu_count(), "repeat": repeat}
    with tempfile.TemporaryDirectory() as folder:
        for content in ("noise", "smooth"):
            frames = clip_frames(content)
            report[content] = [measure(s, frames, audio, Path(folder), repeat) for s in CANDIDATES]
    return report
