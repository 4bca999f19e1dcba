"""How the benchmarks take their figures: medians of per-clip timings, and peak device memory, which is
0 on the CPU (where the tests run the same measurements on the tiny bundle)."""

from __future__ import annotations

import statistics

import torch

GIB = 2**30


def medians(results: list[dict[str, float]]) -> dict[str, float]:
    """Per name (a phase, say), the median over ``results``, which all share the first one's names."""
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib_since_reset(device: torch.device) -> float:
    """GiB; 0 on the CPU."""
    if device.type != "cuda":
        return 0.0
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / GIB
