"""The commands README.md shows a user that no other test runs, each run as the README writes it (temporary paths
in place of runs/ and ~/.cache) and checked for what the README says it does.

Lines run in this process, as their shell would run them: ``ltx-batch ...`` through the CLI's ``main``, ``python -m
MODULE ...`` and ``python SCRIPT.py ...`` through ``runpy`` as ``__main__``; the one test of the installed
``ltx-batch`` script runs it as a process."""

from __future__ import annotations

import importlib.util
import os
import runpy
import shlex
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO

import ray_jobs.render
from ltxcore.bundle import ModelBundle
from ltxcore.media import probe_audio
from ltxcore.mp4 import probe_mp4
from ray_jobs.cli import main
from tools import demo

LESSON_ARGS = "--image {repo}/manifests/examples/lesson/presenter.png --audio {repo}/manifests/examples/lesson"
LESSON_ARGS += ' --lesson lesson03 --prompt "A friendly teacher explains fractions to the camera"'
LESSON_IDS = ["lesson03-de", "lesson03-en", "lesson03-es"]
TINY = "--set video_stg_blocks=[1] --set height=256 --set width=384 --set num_inference_steps=8"  # the README's $TINY
QA = importlib.util.find_spec("ai_edge_litert") is not None  # the qa extra: the face models of the scores


def run(line: str, tmp: Path) -> int:
    """One README line with ``{repo}`` and ``{tmp}`` filled in, run as its shell would; its exit code."""
    argv = shlex.split(line.format(repo=REPO, tmp=tmp))
    if argv[0] == "ltx-batch":
        return main(argv[1:])
    assert argv[0] == "python", line
    script = argv[1:] if argv[1] != "-m" else argv[2:]
    saved = sys.argv
    sys.argv = [script[0], *script[1:]]
    try:
        with warnings.catch_warnings():  # a module this session imported already runs again, as python -m runs it
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            if argv[1] == "-m":
                runpy.run_module(script[0], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(str(REPO / script[0]), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        sys.argv = saved
    return 0


def _long_lesson(tmp: Path, out: str) -> None:
    assert out.strip() == str(tmp / "runs" / "lesson-60s.wav")
    assert probe_audio(out.strip()).duration == pytest.approx(60.0, abs=1e-3)


def _lessons(tmp: Path, out: str) -> None:
    manifest = yaml.safe_load((tmp / "runs" / "lessons.yaml").read_text())
    assert sorted(item["id"] for item in manifest["items"]) == LESSON_IDS
    assert f"{tmp / 'runs' / 'lessons.yaml'}: 3 items, no problems." in out


def _personalize(tmp: Path, out: str) -> None:
    rows = pq.read_table(tmp / "runs" / "campaign.parquet").to_pylist()
    assert [row["id"] for row in rows] == ["c001", "c002", "c003"]
    assert all(row["prompt"].startswith("A friendly host in ") and "{" not in row["prompt"] for row in rows)
    assert f"{tmp / 'runs' / 'campaign.parquet'}: 3 items, no problems." in out


def _synthetic_run(tmp: Path, out: str) -> None:
    assert out.startswith("run ") and "40 items" in out.splitlines()[0]


def _random_bundle(tmp: Path, out: str) -> None:
    assert out.startswith("model version 2.3") and ModelBundle.from_folder(tmp / "tiny-bundle").model_version()


def _distilled_bundle(tmp: Path, out: str) -> None:
    assert "transformer distilled (distilled checkpoint, no LoRA)" in out
    assert "ok: every file is present, is safetensors, and the checkpoint carries its config (distilled)" in out


def _brand_lora(tmp: Path, out: str) -> None:
    """validate with --bundle checks the LoRA against the bundle's transformer (its layers and shapes)."""
    defaults = yaml.safe_load((tmp / "runs" / "lessons-brand.yaml").read_text())["defaults"]
    assert defaults["loras"] == [{"path": str(tmp / "runs" / "brand.safetensors"), "strength": 0.8}]
    assert f"{tmp / 'runs' / 'lessons-brand.yaml'}: 3 items, no problems." in out


def _talking_clips(tmp: Path, out: str) -> None:
    """The stand-in clip and its presenter, and the clip whose sound comes 4 frames late scored as such."""
    probe = probe_mp4(tmp / "runs" / "weak-take.mp4")
    assert (probe.frames, probe.width, probe.height, probe.audio_channels > 0) == (97, 384, 256, True)
    assert (tmp / "runs" / "weak-presenter.png").is_file()
    assert "lipsync_offset_frames: 4\n" in out


# id: (README lines, what they must have done, given the temporary folder and what they printed)
GUIDES: dict[str, tuple[list[str], Callable[[Path, str], None]]] = {
    "long_lesson": (["python -m tools.long_lesson {tmp}/runs/lesson-60s.wav --seconds 60"], _long_lesson),
    "lessons": (
        [f"ltx-batch lessons {LESSON_ARGS} -o {{tmp}}/runs/lessons.yaml", "ltx-batch validate {tmp}/runs/lessons.yaml"],
        _lessons,
    ),
    "personalize": (
        [
            "ltx-batch personalize {repo}/manifests/examples/personalize/customers.csv --audio-column voice"
            ' --id-column customer_id --template "A friendly host in {{city}} greets {{first_name}} by name"'
            " -o {tmp}/runs/campaign.parquet",
            "ltx-batch validate {tmp}/runs/campaign.parquet",
        ],
        _personalize,
    ),
    "synthetic_run": (  # the README's 100000 items take minutes; 40 show the same
        ["python -m tools.synthetic_run {tmp}/big-run 40", "ltx-batch status {tmp}/big-run"],
        _synthetic_run,
    ),
    "random_bundle": (["python -m fixtures.random_bundle {tmp}/tiny-bundle"], _random_bundle),
    "distilled_bundle": (
        [
            "ltx-batch make-tiny-bundle {tmp}/tiny-distilled --distilled-checkpoint",
            "ltx-batch bundle check {tmp}/tiny-distilled --transformer distilled",
        ],
        _distilled_bundle,
    ),
    "brand_lora": (
        [
            "ltx-batch make-tiny-bundle {tmp}/tiny-bundle --lora {tmp}/runs/brand.safetensors",
            f"ltx-batch lessons {LESSON_ARGS} --lora {{tmp}}/runs/brand.safetensors 0.8"
            " -o {tmp}/runs/lessons-brand.yaml",
            f"ltx-batch validate {{tmp}}/runs/lessons-brand.yaml --bundle {{tmp}}/tiny-bundle {TINY}",
        ],
        _brand_lora,
    ),
    "talking_clips": (
        [
            "python tools/talking_clip.py {tmp}/runs/weak-take.mp4 --size 384x256"
            " --reference {tmp}/runs/weak-presenter.png",
            "python tools/talking_clip.py {tmp}/runs/late.mp4 --size 384x256 --shift-frames 4",
            "ltx-batch score {tmp}/runs/late.mp4 --reference {tmp}/runs/weak-presenter.png",
        ],
        _talking_clips,
    ),
}
NEEDS_QA = {"talking_clips"}  # its face mesh, and the scores


@pytest.mark.parametrize(
    "guide",
    [
        pytest.param(name, marks=pytest.mark.skipif(name in NEEDS_QA and not QA, reason="needs the qa extra"))
        for name in GUIDES
    ],
)
def test_a_readme_command_does_what_the_readme_says(guide, tmp_path, monkeypatch, capsys):
    """A guide's lines, run from an empty folder: each exits 0, and together they leave what the README promises."""
    lines, check = GUIDES[guide]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for line in lines:
        assert run(line, tmp_path) == 0, (line, capsys.readouterr())
    check(tmp_path, capsys.readouterr().out)


def test_the_ltx_batch_command_is_this_checkouts_cli(tmp_path):
    """The README runs ``ltx-batch``: the script installed beside this Python runs ``ray_jobs.cli`` (here its
    ``schema``, which the README redirects into the committed schema file)."""
    script = Path(sys.executable).parent / "ltx-batch"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([script, "schema"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "ltx-batch.schema.json").read_text()


def test_make_demo_builds_the_bundle_once_and_renders_the_example_lesson(tmp_path, monkeypatch, capsys):
    """``make demo`` (tools/demo.py) from an empty cache builds the tiny bundle once and hands the driver the
    example lesson with the README's $TINY, settings the tiny bundle takes (``ltx-batch validate`` with the same
    options says so). The driver is not started here: a Ray render of the lesson costs a minute or more on 2
    cores, and the same manifest is rendered, then resumed to nothing left, through the driver by
    test_cli.py::test_render_status_resume_through_the_cli."""
    renders: list[list[str]] = []
    monkeypatch.setattr(demo, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(demo, "RUN", tmp_path / "demo-out" / "lesson-run")
    monkeypatch.setattr(ray_jobs.render, "main", lambda argv: renders.append(argv) or 0)
    assert demo.main() == 0 and demo.main() == 0
    bundle, lesson = tmp_path / "cache" / "tiny-bundle", REPO / "manifests" / "examples" / "lesson" / "lesson.yaml"
    assert (
        capsys.readouterr().out
        == f"building the tiny random bundle in {bundle} (random weights: the pictures will be noise)\n"
    )
    assert renders == 2 * [[str(lesson), "--out", str(demo.RUN), "--bundle", str(bundle), *demo.TINY]]
    assert sorted(demo.TINY[1::2]) == sorted(shlex.split(TINY)[1::2])
    assert main(["validate", str(lesson), "--bundle", str(bundle), *demo.TINY]) == 0
