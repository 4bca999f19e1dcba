"""A resume says what changed since submission (manifest items, bundle files) and applies nothing silently."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LESSON, SHORT_RENDER

from manifests.load import MissingFile, load_manifest
from ray_jobs.cli import main as cli
from ray_jobs.cli import status_lines
from ray_jobs.render import EXIT_BAD_INPUT, main
from runstore.plan import plan, refresh_fingerprints
from runstore.resume_changes import DIGEST_BYTES, bundle_changes, current_manifest, file_digest, item_changes
from runstore.run_folder import RunFolder


def _write(path: Path, items: list[dict]) -> Path:
    defaults = {"prompt": "A presenter", "image": str(LESSON / "presenter.png")}
    path.write_text(yaml.safe_dump({"run_seed": 3, "defaults": defaults, "items": items}))
    return path


A = {"id": "a", "audio": str(LESSON / "en.ogg")}
B = {"id": "b", "audio": str(LESSON / "de.mp3")}
C = {"id": "c", "audio": str(LESSON / "es.m4a")}


def test_item_changes_name_added_removed_and_edited_fields(tmp_path):
    manifest = load_manifest(_write(tmp_path / "m.yaml", [A, B]))
    planned = plan(manifest)
    assert not item_changes(planned, manifest)  # the same manifest: nothing changed (seeds derived alike)
    edited = [{**B, "prompt": "Another", "seed": 7}, C, {"id": "x", "audio": "gone.wav"}]
    changes = item_changes(planned, load_manifest(_write(tmp_path / "m.yaml", edited)), set_aside=("x",))
    assert (changes.added, changes.removed, changes.edited) == (("c",), ("a",), {"b": ("prompt", "seed")})
    assert changes.lines() == [
        f"items added in {tmp_path / 'm.yaml'}: c",
        f"items removed from {tmp_path / 'm.yaml'}: a",
        "item 'b' edited: prompt, seed",
    ]


def test_a_bundle_file_digest_reads_its_ends_only(tmp_path):
    path = tmp_path / "w.safetensors"
    data = bytearray(os.urandom(3 * DIGEST_BYTES))
    path.write_bytes(data)
    before = file_digest(str(path))
    data[len(data) // 2] ^= 1  # the middle MiB is not read
    path.write_bytes(data)
    assert file_digest(str(path)) == before
    data[-1] ^= 1
    path.write_bytes(data)
    after = file_digest(str(path))
    assert after != before
    was = {"quantization": "none", "files": {"checkpoint_path": [{"name": "w", "size": 1, "mtime_ns": 1}]}}
    now = {"quantization": "none", "files": {"checkpoint_path": [{"name": "w", "size": 1, "mtime_ns": 2}]}}
    touched = bundle_changes(was, now, {"checkpoint_path": {"w": before}}, {"checkpoint_path": {"w": before}})
    rewritten = bundle_changes(was, now, {"checkpoint_path": {"w": before}}, {"checkpoint_path": {"w": after}})
    assert touched == ("checkpoint_path/w: mtime changed since submission (first and last MiB the same)",)
    assert rewritten == ("checkpoint_path/w: mtime changed since submission (its bytes differ)",)


def test_a_resume_after_edits_lists_them_and_does_what_the_flag_chooses(local_ray, tiny_bundle, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(Path(tiny_bundle.checkpoint_path).parent, bundle)
    manifest, run = _write(tmp_path / "m.yaml", [A, B]), tmp_path / "run"
    assert main([str(manifest), "--out", str(run), "--bundle", str(bundle), *SHORT_RENDER]) == 0
    assert main(["--resume", str(run)]) == 0 and "nothing to render" in capsys.readouterr().out

    for refused in (["--skip-invalid"], ["--set", "seed=1"], ["--draft"]):
        assert main(["--resume", str(run), *refused]) == EXIT_BAD_INPUT
        assert "do not apply to a resume" in capsys.readouterr().err
    assert main([str(manifest), "--out", str(tmp_path / "new"), "--replan"]) == EXIT_BAD_INPUT
    assert "apply to a resume only" in capsys.readouterr().err and not (tmp_path / "new").exists()

    _write(manifest, [{**B, "prompt": "Another presenter"}])
    rows = len(list((run / "results").iterdir()))
    assert main(["--resume", str(run)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{run} changed since it was submitted, so nothing was rendered:" in err
    assert f"items removed from {manifest}: a" in err
    assert "item 'b' edited: prompt" in err and "pass --replan" in err and "--keep-plan" in err
    assert len(list((run / "results").iterdir())) == rows

    assert cli(["resume", str(run), "--keep-plan"]) == 0
    out = capsys.readouterr().out
    assert "--keep-plan: rendering the plan as submitted; ignored:" in out and "nothing to render" in out
    assert [p.id for p in RunFolder(str(run)).plan()] == ["a", "b"]

    assert cli(["resume", str(run), "--replan"]) == 0
    out = capsys.readouterr().out
    assert "--replan: rendering with these changes:" in out and "1 of 1 items to render" in out
    assert "removed from the plan (their clips and rows stay in the folder): a" in out
    replanned = [(p.id, p.item.prompt) for p in RunFolder(str(run)).plan()]
    assert replanned == [("b", "Another presenter")]
    assert status_lines(str(run))[0].endswith(": 1 items, 1 ok, 0 failed, 0 not rendered yet")

    checkpoint = next(bundle.glob("*dev.safetensors"))
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 10**9))  # cp without -p
    assert main(["--resume", str(run)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"bundle file checkpoint_path/{checkpoint.name}: mtime changed since submission" in err
    assert "(first and last MiB the same)" in err
    assert main(["--resume", str(run), "--keep-plan"]) == 0 and "nothing to render" in capsys.readouterr().out


def test_the_compared_manifest_is_the_one_given_else_the_submitted_one_while_it_is_there(tmp_path):
    submitted = _write(tmp_path / "m.yaml", [A])
    info = {"manifest": str(submitted)}
    assert [e.data["id"] for e in current_manifest(info, None)[0].entries] == ["a"]
    assert current_manifest({**info, "promoted_from": "drafts"}, None) == (None, None)  # a promoted run: no items
    submitted.unlink()
    manifest, note = current_manifest(info, None)
    assert manifest is None and note == (
        f"the submitted manifest {submitted} is gone: the bundle and input files are compared, not the items"
    )
    with pytest.raises(MissingFile, match="no such manifest file"):  # the one the person named must be there
        current_manifest(info, str(tmp_path / "edited.yaml"))
    table = tmp_path / "people.parquet"
    pq.write_table(pa.Table.from_pylist([A]), table)
    gone = tmp_path / "defaults.yaml"
    manifest, note = current_manifest({"manifest": str(table), "options": {"items": {"defaults": str(gone)}}}, None)
    assert manifest is None and note == f"the run's --defaults {gone} is gone: the items of {table} are not compared"


def test_a_plans_fingerprints_are_the_same_before_it_is_written_and_after_it_is_read_back(tmp_path):
    """Whole numbers in float fields (``frame_rate: 25``, an image's ``strength: 1``) read back as floats: a run
    renders with the fingerprints of the plan it wrote, and a resume recomputes them from the plan it reads."""
    image = str(LESSON / "presenter.png")
    body = {
        "defaults": {"prompt": "p", "frame_rate": 25, "audio_max_duration": 2, "video_cfg_scale": 3},
        "items": [{"id": "a", "audio": str(LESSON / "en.ogg"), "images": [{"path": image, "frame": 0, "strength": 1}]}],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body))
    planned = plan(load_manifest(tmp_path / "m.yaml"), {"bundle": "b"})
    run = RunFolder(str(tmp_path / "run"))
    run.record_submission([], planned, {"bundle": {"bundle": "b"}})
    read_back = refresh_fingerprints(run.plan(), {"bundle": "b"})
    assert [p.fingerprint for p in read_back] == [p.fingerprint for p in planned]
    assert read_back[0].item.frame_rate == 25.0 and isinstance(read_back[0].item.frame_rate, float)
