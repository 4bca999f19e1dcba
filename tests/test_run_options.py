"""The run options: one typed value from either command line, kept in run.json with a version and read back,
also from the ``args`` that runs recorded before the options had a type."""

from __future__ import annotations

import json

import pytest

from manifests.model_options import ModelOptions
from ray_jobs.cli import parser
from ray_jobs.options import parse_render_argv, run_options
from ray_jobs.run_options import ItemOptions, RunOptions, RunOptionsError, WorkerOptions, recorded_options

ARGV = ["m.yaml", "--out", "runs/r", "--actors", "2", "--shard-size", "3", "--device", "cpu", "--no-compile"]
ARGV += ["--max-attempts", "5", "--cpus-per-actor", "2", "--max-loras", "1", "--local-cpus", "4"]
ARGV += ["--quantization", "fp8-cast", "--transformer", "distilled", "--bundle", "/models/ltx", "--gemma-root", "/g"]
ARGV += ["--defaults", "d.yaml", "--set", "seed=1", "--draft", "--max-tokens", "900", "--skip-invalid"]

EXPECTED = RunOptions(
    out="runs/r",
    manifest="m.yaml",
    workers=WorkerOptions(
        actors=2,
        shard_size=3,
        device="cpu",
        compile=False,
        max_attempts=5,
        cpus_per_actor=2,
        max_loras=1,
        local_cpus=4,
    ),
    model=ModelOptions(
        bundle="/models/ltx", files=(("gemma_root", "/g"),), quantization="fp8-cast", transformer="distilled"
    ),
    items=ItemOptions(defaults="d.yaml", overrides=("seed=1", "pipeline=distilled"), max_tokens=900, skip_invalid=True),
)


def test_both_command_lines_give_the_same_options():
    assert parse_render_argv(ARGV) == EXPECTED
    assert run_options(parser().parse_args(["render", *ARGV])) == EXPECTED


def test_options_round_trip_through_run_json_with_their_version():
    written = json.loads(json.dumps({"options": EXPECTED.record()}))
    assert written["options"]["version"] == 1
    assert recorded_options(written) == EXPECTED
    resumed = parse_render_argv(["--resume", "runs/r"])
    assert recorded_options(json.loads(json.dumps({"options": resumed.record()}))) == resumed
    written["options"]["version"] = 2
    with pytest.raises(RunOptionsError, match="version 2"):
        recorded_options(written)


def test_the_args_of_an_older_run_json_are_read_as_options():
    """run.json before the options had a type: ``vars()`` of the parsed command line, one flat dict."""
    args = {
        "manifest": "m.yaml",
        "out": "runs/r",
        "resume": None,
        "actors": 2,
        "shard_size": 3,
        "device": "cpu",
        "no_compile": True,
        "max_attempts": 5,
        "cpus_per_actor": 2,
        "max_loras": 1,
        "local_cpus": 4,
        "quantization": "fp8-cast",
        "transformer": "distilled",
        "bundle": "/models/ltx",
        "checkpoint_path": None,
        "distilled_lora": None,
        "spatial_upsampler_path": None,
        "gemma_root": "/g",
        "distilled_checkpoint_path": None,
        "defaults": "d.yaml",
        "set": ["seed=1", "pipeline=distilled"],
        "max_tokens": 900,
        "skip_invalid": True,
    }
    assert recorded_options({"args": args}) == EXPECTED
    assert recorded_options({}) == RunOptions(out="")  # promoted runs record no command line options
