"""ltx-batch promote: chosen drafts of a run become a run of final renders with the same seeds and settings,
which resumes, reports its status and links each result back to its draft.

The draft run here is a run folder as ``render`` writes it (plan, run.json, results), with results rows in
place of rendered drafts: promotion reads nothing else. The report test renders real drafts and promotes
them from the page; here one promoted item is rendered through the driver."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import LESSON

from manifests.load import load_manifest
from manifests.model_section import resolve_model
from quality.score_fields import unscored
from ray_jobs.cli import main, status_lines
from ray_jobs.report import build_report
from runstore.plan import plan
from runstore.results import ShardRecorder, read_results, result_row
from runstore.run_folder import RunFolder

IDS = ("d0", "d1", "d2", "d3")
STATUSES = ("ok", "ok", "failed", "ok")
SYNC = (0.91, 0.42, None, 0.87)  # lip-sync confidence as the worker scored the drafts


@pytest.fixture(scope="module")
def drafts(tiny_bundle, tmp_path_factory) -> RunFolder:
    folder = tmp_path_factory.mktemp("drafts")
    defaults = {"prompt": "A presenter", "audio_max_duration": 1.0, "height": 128, "width": 192}
    defaults.update(pipeline="distilled", video_stg_blocks=[1], num_inference_steps=2, video_cfg_scale=4.0)
    audio = ("en.ogg", "de.mp3", "es.m4a", "en.ogg")
    items = [{"id": i, "audio": str(LESSON / a), "tags": {"n": i}} for i, a in zip(IDS, audio, strict=True)]
    items[2]["seed"] = 99
    manifest = folder / "drafts.yaml"
    manifest.write_text(yaml.safe_dump({"run_seed": 3, "defaults": defaults, "items": items}))
    section = {"bundle": str(Path(tiny_bundle.checkpoint_path).parent)}
    model = resolve_model(section, "none")
    planned = plan(load_manifest(manifest), model.identity)
    run = RunFolder(str(folder / "run"))
    details = {"model": section, "bundle": model.identity, "transformer": "dev", "items": len(planned)}
    run_id = run.record_submission([manifest], planned, details)
    recorder = ShardRecorder(run.results_uri, run_id, "s0", 0, 0)
    now = datetime.now(UTC)
    for p, status, sync in zip(planned, STATUSES, SYNC, strict=True):
        quality = unscored("", 1.0, lipsync_confidence=sync) if sync is not None else None
        recorder.add(result_row(p, status=status, transformer="dev", started_at=now, finished_at=now, quality=quality))
    return run


def _promote(drafts: RunFolder, out: Path, *selection: str) -> list:
    assert main(["promote", drafts.uri, "--out", str(out), *selection]) == 0
    return RunFolder(str(out)).plan()


def test_promote_selects_with_only_exclude_and_where(drafts, tmp_path, capsys):
    draft_id = drafts.run_info()["run_id"]
    before = {p.id: p.item for p in drafts.plan()}
    finals = _promote(drafts, tmp_path / "only", "--only", "d3", "d0")
    assert [p.id for p in finals] == ["d0", "d3"]  # plan order
    assert "render them with: ltx-batch resume " in capsys.readouterr().out
    for p in finals:
        assert p.item.pipeline == "two-stage" and before[p.id].pipeline == "distilled"
        assert p.item.model_copy(update={"pipeline": "distilled"}) == before[p.id]  # same seed, media, settings
        assert p.promoted_from == {"run_id": draft_id, "item_id": p.id}
    info = RunFolder(str(tmp_path / "only")).run_info()
    assert info["promoted_from"]["run_id"] == draft_id and info["transformer"] == "dev"
    assert info["promoted_from"]["selection"] == {"only": ["d3", "d0"], "exclude": [], "where": None}

    assert [p.id for p in _promote(drafts, tmp_path / "exclude", "--exclude", "d1")] == ["d0", "d2", "d3"]
    where = _promote(drafts, tmp_path / "where", "--where", 'status == "ok" and seed != 99', "--exclude", "d3")
    assert [p.id for p in where] == ["d0", "d1"]
    assert [p.id for p in _promote(drafts, tmp_path / "failed", "--where", 'status == "failed"')] == ["d2"]
    in_sync = _promote(drafts, tmp_path / "in-sync", "--where", "lipsync_confidence > 0.8")  # the scores, by name
    assert [p.id for p in in_sync] == ["d0", "d3"]
    assert before["d2"].seed == 99


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (["--only", "d0", "nope"], "has no item 'nope'; its items are d0, d1, d2, d3"),
        (["--where", "colour == 1"], "there is no column 'colour'"),
        (["--where", 'status == "ok"', "--only", "d2"], "nothing to promote: no item of"),
    ],
)
def test_promote_refuses_what_selects_nothing_or_does_not_exist(drafts, tmp_path, capsys, selection, message):
    assert main(["promote", drafts.uri, "--out", str(tmp_path / "finals"), *selection]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "finals").exists()


def test_a_promoted_run_resumes_reports_and_links_to_its_drafts(local_ray, drafts, tmp_path, capsys):
    out = tmp_path / "finals"
    (final,) = _promote(drafts, out, "--only", "d1")
    assert main(["promote", drafts.uri, "--out", str(out)]) == 2  # never over an existing run
    assert main(["resume", str(out)]) == 0
    (row,) = read_results(str(out / "results")).to_pylist()
    assert row["promoted_from"] == {"run_id": drafts.run_info()["run_id"], "item_id": "d1"}
    assert (row["status"], row["pipeline"], row["transformer"]) == ("ok", "two-stage", "dev")
    assert row["seed"] == final.item.seed
    assert (row["num_inference_steps"], row["video_cfg_scale"], row["video_stg_blocks"]) == (2, 4.0, [1])
    assert (out / "videos" / "d1.mp4").stat().st_size > 0
    capsys.readouterr()
    assert main(["resume", str(out)]) == 0
    assert "every item already has an ok result" in capsys.readouterr().out
    lines = status_lines(str(out))
    assert "1 items, 1 ok, 0 failed" in lines[0] and "promoted from draft run" in lines[1]
    page = build_report(str(out)).read_text()
    assert "promoted from draft run" in page and 'class="promote"' not in page  # finals have nothing to promote
