"""Render workers started as soon as the driver knows the model, before it validates and plans the run.

A worker's start (weights read, FP8 quantized, on a GPU 18-240 s) then overlaps the driver's own work, which on a
manifest of 100,000 items takes a minute or more. What only the plan says reaches them later: the warm-up
requests, in the scheduler's ``ready`` call (``ray_jobs.scheduler``). The driver kills every worker it started
when its session ends, so one started for a run that is then refused (invalid items, a changed run) is gone, and
releases at once the ones the plan has no shard for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ray

from manifests.model_section import Model
from ray_jobs.actor import RenderActor, WorkerSettings
from ray_jobs.run_options import WorkerOptions
from ray_jobs.scheduler import WORKER_OPTIONS


@dataclass
class EarlyWorkers:
    """The render workers of one driver session: started with ``start``, handed to the scheduler with ``take``,
    all killed by ``kill``."""

    device: str
    options: WorkerOptions
    run_uri: str
    session: str
    handles: list = field(default_factory=list)  # Ray actor handles, in the order started

    def start(self, model: Model, run_id: str) -> None:
        """One worker per GPU (or per free CPU slot), or ``--actors``; each loads ``model`` now."""
        options, device = self.options, self.device
        if device == "cuda":
            resources = {"num_gpus": 1, "num_cpus": 1}
            count = options.actors or int(ray.cluster_resources().get("GPU", 1))
        else:
            resources = {"num_gpus": 0, "num_cpus": options.cpus_per_actor}
            count = options.actors or max(1, int(ray.available_resources().get("CPU", 1)) // options.cpus_per_actor)
        settings = WorkerSettings(
            paths=model.paths,
            quantization=model.quantization,
            transformer=model.transformer,
            device=device,
            run_uri=self.run_uri,
            run_id=run_id,
            session=self.session,
            threads=options.cpus_per_actor if device == "cpu" else 0,
            compile=device == "cuda" and options.compile,
            max_loras=options.max_loras,
            cache=options.cache,
        )
        remote = ray.remote(RenderActor).options(**WORKER_OPTIONS, **resources)
        self.handles = [remote.remote(settings) for _ in range(count)]

    def take(self, count: int) -> list:
        """The first ``count`` workers, for the scheduler; the others, which the plan has no shard for, are killed
        now, so that their GPUs or CPUs are free."""
        for handle in self.handles[count:]:
            ray.kill(handle)
        self.handles = self.handles[:count]
        return list(self.handles)

    def kill(self) -> None:
        """End every worker still held (the scheduler has ended those it took: killing them again does nothing)."""
        for handle in self.handles:
            ray.kill(handle)
        self.handles = []
