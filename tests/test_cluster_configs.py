"""The cluster launcher YAML validates against Ray's own schema; the RayJob carries what a run needs."""

from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"


def test_ray_cluster_launcher_config_passes_rays_validation():
    from ray.autoscaler._private.commands import prepare_config
    from ray.autoscaler._private.util import validate_config

    config = prepare_config(yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text()))
    validate_config(config)  # raises on a schema violation
    workers = config["available_node_types"]["gpu_workers"]
    assert workers["resources"] == {"GPU": 1}
    assert any("pip install" in c and "ltx-batch" in c for c in config["setup_commands"])


def test_rayjob_manifest_shape():
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["activeDeadlineSeconds"] > 0
    assert spec["entrypoint"].startswith("python -m ray_jobs.render ")
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["LTX_BATCH_CACHE"]


def test_runtime_env_keeps_heavy_local_folders_out_of_the_upload():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert {".venv/", ".git/", "demo-out/"} <= set(env["excludes"])
