"""Drafts: the distilled stage 1 as the engine runs it, the optional distilled checkpoint, what validation says
about draft settings, and what the results row records. Parity with upstream's helpers is in test_parity."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import LESSON, tiny_request
from test_engine import _record_transformer_calls

import ltxcore.engine as engine_module
from fixtures.random_bundle import add_distilled_checkpoint
from ltxcore.bundle import RELEASED_NAMES, ModelBundle
from ltxcore.engine import Engine
from ltxcore.errors import BundleError, RenderInputError
from manifests.item import GUIDER_FIELDS
from manifests.load import load_manifest
from manifests.model_section import resolve_model
from manifests.validate import draft_warnings, validate
from ray_jobs.cli import main
from ray_jobs.options import parse_render_argv
from ray_jobs.render import warm_requests
from runstore.plan import PlannedItem, fingerprint, plan
from runstore.results import result_row
from tools.bench_draft import measure_draft

_draft = partial(
    tiny_request, prompt="A draft of a presenter", height=64, pipeline="distilled", distilled_lora_strength=0.75
)


def test_draft_stage_1_is_8_plain_batch_1_forwards_with_the_lora_in_both_stages(engine, media, monkeypatch):
    request = _draft(media["stereo_wav"], prompt="A draft whose negative prompt is never encoded")
    encoded: list[str] = []
    real_encode = engine_module.encode_prompts

    def encode(texts, *args):
        encoded.extend(texts)
        return real_encode(texts, *args)

    monkeypatch.setattr(engine_module, "encode_prompts", encode)
    calls, hook = _record_transformer_calls(engine)
    try:
        engine.render(request, None)
        rendered = list(calls)
        calls.clear()
        engine.warm_up(request)
        warmed = list(calls)
    finally:
        hook.remove()
    assert len(rendered) == 8 + 3  # DISTILLED_SIGMA_VALUES, then STAGE_2_DISTILLED_SIGMA_VALUES
    stage_1, stage_2 = rendered[:8], rendered[8:]
    assert len(set(stage_1)) == 1 and len(set(stage_2)) == 1
    (shapes_1, plain_1, _, lora_1), (shapes_2, plain_2, _, lora_2) = stage_1[0], stage_2[0]
    assert [s[0] for s in shapes_1] == [1] * 6 and plain_1 and plain_2  # batch 1, no guidance passes
    assert shapes_2[0][1] == 4 * shapes_1[0][1]  # stage 1 at half height and width
    assert lora_1 == lora_2 == frozenset({("distilled", 0.75)})
    assert warmed == [stage_1[0], stage_2[0]]  # warm_up compiles exactly the draft's shapes
    assert encoded == [request.prompt]  # no guider, so no negative prompt
    assert not engine.adapters.strengths  # every adapter switched off again


@pytest.fixture(scope="module")
def distilled_bundle(tiny_bundle, tmp_path_factory) -> ModelBundle:
    """The tiny bundle's files plus a distilled checkpoint (its dev weights with the LoRA fused in)."""
    folder = tmp_path_factory.mktemp("distilled-bundle")
    for name in RELEASED_NAMES.values():
        (folder / name).symlink_to(Path(tiny_bundle.checkpoint_path).parent / name)
    add_distilled_checkpoint(folder)
    return ModelBundle.from_folder(folder, transformer="distilled")


def test_a_worker_on_the_distilled_checkpoint_renders_drafts_without_lora(distilled_bundle, engine, media):
    distilled = Engine(distilled_bundle)
    assert not distilled.adapters.pinned  # no distilled LoRA on the distilled checkpoint
    assert "transformer distilled (distilled checkpoint, no LoRA)" in distilled_bundle.describe()
    request = _draft(media["stereo_wav"], distilled_lora_strength=1.0)
    ours = distilled.render(request, None, keep_latent=True).video_latent.float()
    with_lora = engine.render(request, None, keep_latent=True).video_latent.float()
    assert 0 < (ours - with_lora).norm() / with_lora.norm() < 1e-2  # the fused LoRA, rounded to bf16 once
    with pytest.raises(RenderInputError) as caught:
        distilled.render(_draft(media["stereo_wav"], pipeline="two-stage"), None)
    assert caught.value.field == "pipeline" and "needs the dev checkpoint" in caught.value.message


def test_the_distilled_transformer_is_part_of_the_bundle_identity(distilled_bundle, tiny_bundle):
    folder = str(Path(distilled_bundle.checkpoint_path).parent)
    dev, draft = resolve_model({"bundle": folder}, "none"), resolve_model({"bundle": folder}, "none", "distilled")
    assert "transformer" not in dev.identity and "distilled_checkpoint_path" not in dev.paths
    assert draft.identity["transformer"] == "distilled" and "distilled_checkpoint_path" in draft.identity["files"]
    with pytest.raises(BundleError, match="needs the distilled checkpoint"):
        ModelBundle.from_folder(Path(tiny_bundle.checkpoint_path).parent, transformer="distilled")


def _manifest(tmp_path: Path) -> Path:
    body = {
        "defaults": {"prompt": "A presenter", "audio": str(LESSON / "en.ogg"), "num_inference_steps": 20},
        "items": [
            {"id": "a", "pipeline": "distilled", "video_cfg_scale": 4.0},
            {"id": "b"},
            {"id": "c", "pipeline": "distilled"},
        ],
    }
    path = tmp_path / "drafts.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_settings_drafts_do_not_use_are_warnings_and_two_stage_needs_the_dev_transformer(tmp_path, capsys):
    manifest = load_manifest(_manifest(tmp_path))
    assert validate(manifest) == []
    warnings = [str(w) for w in draft_warnings(manifest)]
    assert warnings == [
        "defaults, field 'num_inference_steps': does not apply to the 2 distilled item(s) (8 fixed steps, no "
        "guidance): drafts render without it, and it applies again when they are promoted to two-stage.",
        "item 'a' (line 6), field 'video_cfg_scale': does not apply to pipeline distilled (8 fixed steps, no "
        "guidance): drafts render without it, and it applies again when they are promoted to two-stage.",
    ]
    assert main(["validate", str(tmp_path / "drafts.yaml")]) == 0
    out = capsys.readouterr().out
    assert "3 items, no problems.\n2 warning(s), not errors:" in out and "  - item 'a' (line 6)" in out
    (problem,) = validate(manifest, transformer="distilled")
    assert (problem.where, problem.field) == ("item 'b' (line 9)", "pipeline")
    assert "needs the dev checkpoint" in problem.message


def test_results_record_what_a_draft_used_and_old_plans_keep_their_fingerprints(tmp_path):
    planned = plan(load_manifest(_manifest(tmp_path)))
    a, b = planned[0], planned[1]
    row = result_row(a, status="ok", transformer="dev")
    assert row["pipeline"] == "distilled" and row["num_inference_steps"] == 8
    assert all(row[name] is None for name in GUIDER_FIELDS) and row["distilled_lora_strength"] == 1.0
    assert result_row(a, status="ok", transformer="distilled")["distilled_lora_strength"] is None
    assert a.item.video_cfg_scale == 4.0 and a.item.num_inference_steps == 20  # the plan keeps them for promotion
    row = result_row(b, status="ok", transformer="dev")
    assert (row["num_inference_steps"], row["video_cfg_scale"], row["promoted_from"]) == (20, 3.0, None)
    promoted = PlannedItem(b.item, b.fingerprint, {"run_id": "r1", "item_id": "b"})
    assert result_row(promoted, status="failed")["promoted_from"] == {"run_id": "r1", "item_id": "b"}
    before_pipelines = {k: v for k, v in b.item.values.items() if k != "pipeline"}  # as plans were written before
    media = {"audio": None, "image": None}
    assert fingerprint(b.item.values, media, None) == fingerprint(before_pipelines, media, None)
    as_final = {**a.item.values, "pipeline": "two-stage"}
    assert fingerprint(a.item.values, media, None) != fingerprint(as_final, media, None)


def test_draft_is_set_pipeline_distilled_and_workers_warm_each_pipeline(tmp_path):
    options = parse_render_argv(["m.yaml", "--out", "r", "--set", "seed=1", "--draft", "--transformer", "distilled"])
    assert options.items.overrides == ("seed=1", "pipeline=distilled") and options.model.transformer == "distilled"
    planned = plan(load_manifest(_manifest(tmp_path)))
    assert [r.pipeline for r in warm_requests(planned)] == ["distilled", "two-stage"]


def test_bench_times_drafts_beside_the_two_stage_figures(engine, media, tmp_path):
    requests = [_draft(media["stereo_wav"], pipeline="two-stage", seed=s) for s in (1, 2)]
    final = {"steady_s_per_clip": 30.0, "wall_s_median": 40.0, "peak_gib": 0.0}  # as the two-stage part hands them
    report = measure_draft(engine, requests, tmp_path / "ours.json", final)
    assert report["clips"] == 1 and report["pipeline"] == "distilled"
    assert {"stage_1", "upsample", "stage_2", "decode", "mux"} <= set(report["phases_s_median"])
    assert report["clips_per_hour"] == pytest.approx(3600 / report["steady_s_per_clip"])
    assert report["clips_per_hour_vs_final"] == pytest.approx(30.0 / report["steady_s_per_clip"])
    assert report["final_clips_per_hour"] == 120.0
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["draft-0.mp4", "draft-1.mp4", "draft-steady-0.mp4"]


def test_worker_bench_takes_rows_and_scores_as_the_worker_does(engine, media, tmp_path):
    """``--part worker`` on a GPU; here its steady loop on the CPU: every clip is scored by the worker's
    ``ClipScorer`` (no face in random renders: null scores with the reason), and a row never waits for one."""
    from ray_jobs.worker_scoring import ClipScorer
    from tools.bench_worker import steady_state

    requests = [_draft(media["stereo_wav"], seed=s) for s in (1, 2)]
    scorer = ClipScorer()
    try:
        report = steady_state(engine, requests, tmp_path, "distilled-scored", scorer)
    finally:
        scorer.close()
    assert report["quality_wait_s_max"] < 5.0  # it waits for the hard link, never for the scores
    assert report["scoring_reasons"] == ["no face found in any frame searched"]
    assert report["scoring_cpu_s_per_clip"] > 0
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["distilled-scored-0.mp4", "distilled-scored-1.mp4"]
