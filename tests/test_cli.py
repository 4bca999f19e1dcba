"""`ltx-batch`: each subcommand on real inputs, and errors as one sentence without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import EXAMPLES, LESSON, REPO
from conftest import QUICK_1S_FLAGS as FAST

from ltxcore.media import probe_audio
from manifests.builders import BuildError, build_lessons, build_personalization
from manifests.load import load_manifest
from manifests.validate import validate
from ray_jobs.cli import main, parser
from ray_jobs.options import parse_render_argv, run_options
from ray_jobs.run_options import recorded_options
from runstore.run_folder import NotARun


def test_help_has_an_example_for_every_subcommand(capsys):
    for command in (
        "validate",
        "render",
        "resume",
        "status",
        "report",
        "bundle",
        "make-tiny-bundle",
        "lessons",
        "personalize",
        "score",
        "retry-weak",
        "prepare",
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example: ltx-batch " + command.split()[0] in capsys.readouterr().out


RENDER_OPTIONS = ["--bundle", "--set", "--actors", "--shard-size", "--quantization", "--checkpoint-path"]
RENDER_OPTIONS += ["--gemma-root", "--defaults", "--max-attempts", "--cpus-per-actor", "--local-cpus", "--no-compile"]
RENDER_OPTIONS += ["--skip-invalid", "--max-tokens", "--max-loras", "--cache"]


def test_render_and_resume_help_list_every_render_option(capsys):
    for command, extra in (("render", ["--out"]), ("resume", []), ("prepare", [])):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert [o for o in RENDER_OPTIONS + extra if o not in out] == []


def test_ltx_batch_render_and_resume_parse_like_python_m_ray_jobs_render():
    argv = ["m.yaml", "--out", "runs/r", "--actors", "2", "--set", "seed=1", "--set", "width=192", "--no-compile"]
    argv += ["--gemma-root", "/g", "--quantization", "fp8-cast"]
    rendered = run_options(parser().parse_args(["render", *argv]))
    assert rendered == parse_render_argv(argv)
    assert (rendered.manifest, rendered.out, rendered.resume, rendered.items.overrides) == (
        "m.yaml",
        "runs/r",
        False,
        ("seed=1", "width=192"),
    )
    assert (rendered.workers.actors, rendered.workers.compile, rendered.model.quantization) == (2, False, "fp8-cast")
    assert rendered.model.files == (("gemma_root", "/g"),)
    options = ["--local-cpus", "2", "--bundle", "/b"]
    resumed = run_options(parser().parse_args(["resume", "runs/r", *options]))
    assert resumed == parse_render_argv(["--resume", "runs/r", *options])
    assert (resumed.out, resumed.manifest, resumed.resume, resumed.workers.local_cpus) == ("runs/r", None, True, 2)


def test_validate_exit_codes(capsys):
    assert main(["validate", str(EXAMPLES / "broken" / "broken.yaml")]) == 1
    assert main(["validate", str(LESSON / "lesson.yaml")]) == 0
    assert "no problems" in capsys.readouterr().out


def test_errors_are_one_sentence_unless_debug(capsys, tmp_path):
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(NotARun):
        main(["--debug", "status", str(tmp_path / "nowhere")])


def test_bundle_check_and_make_tiny_bundle(tmp_path, capsys):
    assert main(["make-tiny-bundle", str(tmp_path / "b")]) == 0
    assert main(["bundle", "check", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "model version 2.3" in out and "checkpoint_path:" in out and "GiB" in out
    (tmp_path / "b" / "ltx-2.3-22b-distilled-lora-384.safetensors").write_bytes(b"not safetensors")
    assert main(["bundle", "check", str(tmp_path / "b")]) == 2
    assert "distilled_lora" in capsys.readouterr().err


def test_lessons_builder_round_trips_into_a_valid_manifest(tmp_path, capsys):
    series = tmp_path / "recordings"
    for lesson in ("lesson01", "lesson02"):
        (series / lesson).mkdir(parents=True)
        for name in ("en.ogg", "de.mp3", "es.m4a"):
            shutil.copy(LESSON / name, series / lesson / name)
    shutil.copy(LESSON / "de.mp3", series / "lesson02" / "DE.MP3")  # saved twice, under a name in capitals
    out = tmp_path / "lessons.yaml"
    assert (
        main(
            [
                "lessons",
                "--image",
                str(LESSON / "presenter.png"),
                "--audio",
                str(series),
                "--prompt",
                "A teacher explains",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    said = capsys.readouterr().out.splitlines()
    assert said[:3] == [
        "7 recording(s) grouped as 2 lesson(s):",
        "  lesson01: 3 language(s) (de, en, es)",
        "  lesson02: 4 language(s) (DE, de, en, es)",
    ]
    assert said[3].startswith("warning: lesson02: DE and de differ only in case, so they are 2 items;")
    manifest = load_manifest(out)
    assert validate(manifest) == []
    ids = sorted(e.data["id"] for e in manifest.entries)
    expected = [f"{lesson}-{lang}" for lesson in ("lesson01", "lesson02") for lang in ("de", "en", "es")]
    assert ids == sorted([*expected, "lesson02-DE"])
    body = yaml.safe_load(out.read_text())
    assert body["defaults"]["seed"] == 42 and body["items"][0]["tags"]["language"]
    for item in body["items"]:  # the whole recording, within one frame
        assert (item["num_frames"] - 1) / 25 < probe_audio(item["audio"]).duration <= item["num_frames"] / 25


def test_lessons_builder_reports_every_problem(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "en.mp3").write_bytes(b"garbage")
    shutil.copy(LESSON / "de.mp3", folder / "de.mp3")
    with pytest.raises(BuildError) as caught:
        build_lessons(tmp_path / "missing.png", folder, "p", tmp_path / "out.yaml")
    assert len(caught.value.problems) == 2
    assert "missing.png: no such file" in str(caught.value) and "en.mp3: cannot open" in str(caught.value)
    assert not (tmp_path / "out.yaml").exists()


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    for name in ("en.ogg", "de.mp3"):
        shutil.copy(LESSON / name, tmp_path / name)
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(["customer_id,first_name,city,voice", *rows]) + "\n")
    return path


def test_personalize_round_trips_into_a_valid_parquet_manifest(tmp_path):
    csv = _csv(tmp_path, ["c1,Ada,Lisbon,en.ogg", "c2,Bruno,Berlin,de.mp3"])
    out = tmp_path / "campaign.parquet"
    code = main(
        [
            "personalize",
            str(csv),
            "--template",
            "A host greets {first_name} from {city}",
            "--audio-column",
            "voice",
            "--id-column",
            "customer_id",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == ["c1", "c2"] and rows[0]["prompt"] == "A host greets Ada from Lisbon"
    assert dict(rows[1]["tags"]) == {"first_name": "Bruno", "city": "Berlin"}
    assert validate(load_manifest(out, overrides={"image": str(LESSON / "presenter.png")})) == []


def test_personalize_reports_every_row_before_writing(tmp_path):
    csv = _csv(tmp_path, ["c1,,Lisbon,en.ogg", "c2,Bruno,Berlin,missing.mp3", "c2,Cara,Rome,de.mp3"])
    out = tmp_path / "campaign.parquet"
    with pytest.raises(BuildError) as caught:
        build_personalization(
            csv, "Hi {first_name} in {city}, {weather}", out, audio_column="voice", id_column="customer_id"
        )
    assert caught.value.problems == [
        "template placeholder {weather} has no column in customers.csv (columns: customer_id, first_name, city, voice)."
    ]
    with pytest.raises(BuildError) as caught:
        build_personalization(csv, "Hi {first_name} in {city}", out, audio_column="voice", id_column="customer_id")
    assert caught.value.problems == [
        "customers.csv line 2: 'first_name' is empty but the prompt template needs it.",
        "customers.csv line 3: audio file 'missing.mp3' does not exist.",
        "customers.csv line 4: id 'c2' repeats line 3.",
    ]
    assert not out.exists()


def test_render_without_a_model_says_so_before_ray_starts(tmp_path):
    """No model: section in the manifest and no --bundle: one line naming the manifest and the two ways to give
    one, the exit code of a refused manifest, and no run folder. In a process of its own, so that what it says of
    Ray is the driver's: Ray was neither joined nor started."""
    run = tmp_path / "run"
    script = (
        "import sys, ray; from ray_jobs.cli import main; code = main(sys.argv[1:]); print(code, ray.is_initialized())"
    )
    command = [sys.executable, "-c", script, "render", str(LESSON / "lesson.yaml"), "--out", str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.splitlines() == [
        f"error: no model given: {LESSON / 'lesson.yaml'} has no model: section (a Parquet manifest takes it from "
        "--defaults or the .yaml beside it); add one with bundle: FOLDER, or pass --bundle FOLDER."
    ]
    assert not run.exists()


def test_render_status_resume_through_the_cli(local_ray, tiny_bundle, tmp_path, capsys):
    """Then the run resumes as well when its run.json is in the format of runs recorded before the options had a
    type (the parsed command line as ``args``)."""
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    run = str(tmp_path / "run")
    argv = ["render", str(LESSON / "lesson.yaml"), "--out", run, "--bundle", bundle, *FAST, "--actors", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["status", run]) == 0
    out = capsys.readouterr().out
    assert "3 items, 3 ok, 0 failed, 0 not rendered yet" in out and "clips/h" in out
    assert main(["resume", run]) == 0
    assert "nothing to render" in capsys.readouterr().out
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert recorded_options(info) == run_options(parser().parse_args(argv))
    older = {k: v for k, v in info.items() if k != "options"}
    older["args"] = {"manifest": str(LESSON / "lesson.yaml"), "out": run, "resume": None, "bundle": bundle}
    older["args"] |= {"set": FAST[1::2], "max_tokens": None, "skip_invalid": False, "no_compile": False}
    (tmp_path / "run" / "run.json").write_text(json.dumps(older))
    assert main(["resume", run]) == 0
    assert "nothing to render" in capsys.readouterr().out


def test_lessons_builder_takes_several_images_and_enhancement(tmp_path, capsys):
    folder = tmp_path / "lesson05"
    folder.mkdir()
    shutil.copy(LESSON / "en.ogg", folder / "en.ogg")
    out = tmp_path / "lessons.yaml"
    image = str(LESSON / "presenter.png")
    args = ["lessons", "--image", image, "--image", image, "48", "0.8", "--audio", str(folder), "--prompt", "p"]
    assert main([*args, "--enhance-prompt", "-o", str(out)]) == 0
    defaults = yaml.safe_load(out.read_text())["defaults"]
    assert defaults["images"] == [
        {"path": image, "frame": 0, "strength": 1.0},
        {"path": image, "frame": 48, "strength": 0.8},
    ]
    assert defaults["enhance_prompt"] is True and "image" not in defaults
    assert validate(load_manifest(out)) == []
    assert main(["lessons", "--image", image, "late", "--audio", str(folder), "--prompt", "p", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--image" in err and "write PATH [FRAME [STRENGTH]]" in err


def test_the_one_clip_command_renders_an_mp4_and_reports_it(tiny_bundle, media, tmp_path, capsys):
    """``python -m ltxcore.cli`` as the README shows it, on the tiny bundle: the clip, and its JSON report."""
    from ltxcore.cli import main as render_clip

    out = tmp_path / "clip.mp4"
    args = ["--bundle", str(Path(tiny_bundle.checkpoint_path).parent), "--audio", media["stereo_wav"]]
    args += ["--image", media["image"], "--prompt", "A presenter", "--height", "128", "--width", "128"]
    args += ["--num-frames", "9", "--steps", "2", "--stg-blocks", "1", "--out", str(out)]
    assert render_clip(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output"] == str(out) and report["probe"]["frames"] == 9 and out.stat().st_size > 0
    assert render_clip([*args[:-1], str(tmp_path / "bad.mp4"), "--height", "100"]) == 2  # one line, no traceback
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("command", ["status", "report"])
def test_status_and_report_of_a_folder_that_is_no_run_say_so_in_a_line(command, tmp_path, capsys):
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path} is not a run folder (it has no run.json)") and len(err.splitlines()) == 1


def test_a_command_keeps_its_temporary_files_in_its_scratch_and_removes_them(tmp_path, monkeypatch, capsys):
    """validate of a remote manifest copies it to read it: the copy lives in the command's scratch (which also
    removes what a killed command left), never in the system's temporary folder, and is gone afterwards."""
    import socket
    import tempfile

    cache = tmp_path / "cache"
    monkeypatch.setenv("LTX_BATCH_CACHE", str(cache))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    (tmp_path / "system-temp").mkdir()
    killed = cache / "scratch" / f"{socket.gethostname()}-{2**22 + 1}-deadbeef"  # a pid beyond pid_max: gone
    killed.mkdir(parents=True)
    (killed / "manifest.yaml").write_text("left behind")
    manifest = tmp_path / "m.yaml"
    body = {"defaults": {"prompt": "A presenter", "image": str(LESSON / "presenter.png")}, "items": []}
    body["items"] = [{"id": "clip", "audio": str(LESSON / "en.ogg")}]
    manifest.write_text(yaml.safe_dump(body))
    assert main(["validate", f"file://{manifest}"]) == 0
    assert f"file://{manifest}" in capsys.readouterr().out  # named as given, not by its copy
    assert list((tmp_path / "system-temp").iterdir()) == []
    assert list((cache / "scratch").iterdir()) == []  # the command's own, and the killed one's
