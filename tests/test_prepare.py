"""``ltx-batch prepare`` on the CPU with the tiny bundle: it writes the FP8 transformer into the artifact cache under
the key a render worker of the same bundle computes (that worker then loads it), says there is no compile on the
CPU, and finds its own file on a second run. The cache is keyed by the bundle files' identity."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import LESSON, SHORT_RENDER

from ltxcore.artifacts import ArtifactCache
from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from manifests.model_section import bundle_identity, model_paths
from ray_jobs.cli import main

TINY = [*SHORT_RENDER[: SHORT_RENDER.index("--actors")], "--device", "cpu", "--quantization", "fp8-scaled"]


def _prepare(capsys, folder: Path, *extra: str) -> tuple[int, str]:
    code = main(["prepare", str(LESSON / "lesson.yaml"), "--bundle", str(folder), *TINY, *extra])
    return code, capsys.readouterr().out


def test_prepare_writes_the_weights_a_render_worker_then_loads(tiny_bundle, tmp_path, capsys):
    folder, cache = Path(tiny_bundle.checkpoint_path).parent, tmp_path / "cache"
    code, out = _prepare(capsys, folder, "--cache", str(cache))
    written = list((cache / "fp8").glob("*.safetensors"))
    assert code == 0 and len(written) == 1
    assert "FP8 weights: quantized in" in out and f"wrote {written[0]}" in out
    assert "compiled graphs: no compile on CPU" in out
    code, out = _prepare(capsys, folder, "--cache", str(cache))
    assert code == 0 and f"FP8 weights: already in {written[0]}" in out
    # a render worker keys its cache as RenderActor does: by the bundle as the run names it
    identity = bundle_identity(model_paths({"bundle": str(folder)}), "fp8-scaled")
    worker = Engine(ModelBundle.from_folder(folder, "fp8-scaled"), artifacts=ArtifactCache.of(str(cache), identity))
    assert worker.fp8_weights is not None and worker.fp8_weights.loaded and worker.fp8_weights.uri == str(written[0])


def test_without_cache_it_uses_the_nodes_default_folder(tiny_bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTX_BATCH_CACHE", str(tmp_path / "node"))
    code, out = _prepare(capsys, Path(tiny_bundle.checkpoint_path).parent)
    assert code == 0 and f"artifact cache {tmp_path / 'node' / 'artifacts'}" in out
    assert len(list((tmp_path / "node" / "artifacts" / "fp8").glob("*.safetensors"))) == 1


def test_an_invalid_manifest_is_refused_before_anything_loads(tiny_bundle, tmp_path, capsys):
    folder = Path(tiny_bundle.checkpoint_path).parent
    code = main(["prepare", str(LESSON / "lesson.yaml"), "--bundle", str(folder), "--cache", str(tmp_path / "c")])
    assert code == 2 and "video_stg_blocks" in capsys.readouterr().err  # block 28 of a 2-block model
    assert not (tmp_path / "c").exists()


def test_the_cache_key_follows_the_checkpoint_files(tiny_bundle, tmp_path):
    def digest(folder: Path) -> str:
        return ArtifactCache.of(None, bundle_identity(model_paths({"bundle": str(folder)}), "fp8-scaled")).bundle

    original = Path(tiny_bundle.checkpoint_path).parent
    copy = Path(shutil.copytree(original, tmp_path / "copy"))  # copy2 keeps sizes and mtimes: the same bundle
    assert digest(copy) == digest(original)
    checkpoint = copy / Path(tiny_bundle.checkpoint_path).name
    os.utime(checkpoint, ns=(0, checkpoint.stat().st_mtime_ns + 1))  # a replaced checkpoint
    assert digest(copy) != digest(original)
    assert ArtifactCache.of(None, {}).bundle != ArtifactCache.of(None, {"quantization": "fp8-scaled"}).bundle


def test_render_workers_and_prepare_share_one_cache_key(tiny_bundle, tmp_path, capsys, local_ray):
    from ray_jobs.render import main as render

    folder, cache = Path(tiny_bundle.checkpoint_path).parent, tmp_path / "cache"
    argv = [str(LESSON / "lesson.yaml"), "--out", str(tmp_path / "run"), "--bundle", str(folder), *TINY]
    assert render([*argv, "--set", "audio_max_duration=0.3", "--actors", "1", "--cache", str(cache)]) == 0
    [written] = list((cache / "fp8").glob("*.safetensors"))  # the worker quantized and kept it where --cache said
    code, out = _prepare(capsys, folder, "--cache", str(cache))
    assert code == 0 and f"FP8 weights: already in {written}" in out  # so a worker finds what prepare writes
