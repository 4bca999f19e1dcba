"""Manifests: loading, every validation rule with its exact message, the plan, and the results table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import EXAMPLES, LESSON

from manifests.load import ManifestError, load_manifest
from manifests.validate import validate
from ray_jobs.cli import main as cli_main
from runstore.plan import derive_seed, plan, plan_from_table, plan_table, refresh_fingerprints
from runstore.results import ShardRecorder, latest_attempts, read_results, result_row, still_to_render


def _messages(path) -> list[str]:
    return [str(p) for p in validate(load_manifest(path))]


def test_broken_example_lists_every_planted_error_in_one_run(capsys):
    assert cli_main(["validate", str(EXAMPLES / "broken" / "broken.yaml")]) == 1
    out = capsys.readouterr().out
    expected = [
        "item 'ok-item' (line 9), field 'id': duplicates the id of item 'ok-item' (line 7).",
        "item '../escape' (line 11), field 'id': '../escape' is not a safe file name (no leading dot, no '..').",
        f"item 'missing-audio' (line 13), field 'audio': file {LESSON / 'fr.ogg'} does not exist or is not a file.",
        "item 'bad-frames' (line 15), field 'num_frames': must be a whole number of frames >= 1, got 0.",
        "item 'bad-size' (line 18), field 'height': must be a positive multiple of 64 for the two-stage pipeline,"
        " got 500.",
        "item 'typo' (line 21), field 'video_cfg_sacle': is not a known field. Did you mean 'video_cfg_scale'?",
        "item 'nan-guidance' (line 24), field 'video_cfg_scale': must be a finite number, got nan.",
        "item 'negative-duration' (line 27), field 'audio_max_duration': must be a positive number of seconds, got -2.",
        f"item 'not-audio' (line 30), field 'audio': {LESSON / 'presenter.png'} has no audio stream.",
    ]
    for line in expected:
        assert line in out
    assert "9 problem(s) in 10 items" in out


def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(body))
    return path


EN = str(LESSON / "en.ogg")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"seed": 1.5}, "item 'a' (line 2), field 'seed': must be a whole number, got 1.5."),
        ({"video_stg_scale": "high"}, "field 'video_stg_scale': must be a number, got 'high'."),
        ({"video_rescale_scale": 3}, "field 'video_rescale_scale': must be between 0 and 1, got 3."),
        ({"audio_start_time": -1}, "field 'audio_start_time': must be a time in seconds >= 0, got -1."),
        ({"image": EN}, f"field 'image': {EN} is not a readable image"),
        ({"tags": ["x"]}, "field 'tags': must be a mapping of labels, got ['x']."),
        ({"id": "a\tb"}, "field 'id': 'a\\tb' contains a path separator or control character"),
        ({"id": "a/b"}, "field 'id': 'a/b' contains a path separator or control character"),
        ({"id": None}, "item #1 (line 2), field 'id': is required."),
        ({"audio": None}, "item 'a' (line 2), field 'audio': is required."),
        ({"prompt": "  "}, "field 'prompt': is empty; describe the shot"),
        ({"video_stg_blocks": [1, -2]}, "field 'video_stg_blocks': has invalid block indices [-2]."),
        ({"distilled_lora_strength": 9}, "field 'distilled_lora_strength': must be between 0 and 2, got 9."),
    ],
)
def test_each_validation_rule(tmp_path, item, expected):
    entry = {k: v for k, v in {"id": "a", "audio": EN, "prompt": "p", **item}.items() if v is not None}
    path = tmp_path / "m.yaml"
    path.write_text("items:\n  - " + yaml.safe_dump(entry, default_flow_style=True, width=10_000))
    messages = _messages(path)
    assert any(expected in m for m in messages), messages


def test_unsupported_audio_codec_is_reported(tmp_path):
    import av

    path = tmp_path / "voice.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_alaw", rate=8000)
        stream.layout = "mono"
        import numpy as np

        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    manifest = _write(tmp_path, f"items:\n  - {{id: a, prompt: p, audio: {path}}}\n")
    assert any("uses the pcm_alaw codec, which is not supported" in m for m in _messages(manifest))


def test_unknown_top_level_and_model_keys(tmp_path):
    path = _write(
        tmp_path,
        f"""
        modle: {{}}
        model: {{chekpoint_path: x}}
        items:
          - {{id: a, prompt: p, audio: {LESSON / "en.ogg"}}}
    """,
    )
    messages = _messages(path)
    assert any("unknown top-level key 'modle'" in m for m in messages)
    assert any(
        "model, field 'chekpoint_path': is not a known field. Did you mean 'checkpoint_path'?" in m for m in messages
    )


def test_yaml_is_loaded_safely(tmp_path):
    path = _write(tmp_path, "items: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(Exception, match="not valid YAML"):
        load_manifest(path)


def test_plan_resolves_defaults_seeds_and_frames():
    planned = plan(load_manifest(LESSON / "lesson.yaml"))
    by_id = {p.id: p.item for p in planned}
    en, es = by_id["lesson03-en"], by_id["lesson03-es"]
    assert en.image == str(LESSON / "presenter.png")
    assert en.seed == derive_seed(2026, "lesson03-en") != es.seed
    assert en.video_cfg_scale == 3.0 and en.video_stg_blocks == [28] and en.video_rescale_scale == 0.7
    assert en.num_frames == 182 and es.num_frames == 150  # 7.25 s of audio, and audio_max_duration 6.0 s, at 25 fps
    assert es.tags["language"] == "es"
    again = plan(load_manifest(LESSON / "lesson.yaml"))
    assert [p.fingerprint for p in again] == [p.fingerprint for p in planned]
    assert plan_from_table(plan_table(planned)) == planned


def test_a_new_runs_planned_items_are_its_plan_as_read_back(tmp_path, monkeypatch):
    """A new run renders the items it planned rather than plan.parquet read back: they are the same, numbers
    written whole (floats in the file) too, so a resume finds their fingerprints. The plan is written
    ``PLAN_ROWS`` rows per row group."""
    from runstore import run_folder

    monkeypatch.setattr(run_folder, "PLAN_ROWS", 2)
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"a LoRA, not read when planning")
    image = {"path": str(LESSON / "presenter.png"), "frame": 0, "strength": 1}
    defaults = {"audio": str(LESSON / "en.ogg"), "frame_rate": 25, "video_cfg_scale": 3, "images": [image]}
    defaults["loras"] = [{"path": str(lora), "strength": 1}]
    items = [{"id": f"item-{n}", "prompt": "A presenter", "num_frames": 17} for n in range(3)]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"run_seed": 1, "defaults": defaults, "items": items}))
    planned = plan(load_manifest(tmp_path / "m.yaml"))
    run = run_folder.RunFolder(str(tmp_path / "run"))
    run.record_submission([], planned, {})
    assert pq.ParquetFile(tmp_path / "run" / "plan.parquet").num_row_groups == 2
    read_back = refresh_fingerprints(run.plan(), None)
    assert [p.fingerprint for p in read_back] == [p.fingerprint for p in planned]
    assert [repr(p.item) for p in read_back] == [repr(p.item) for p in planned]  # 25.0, not 25


def test_fingerprint_changes_with_settings_and_media_not_tags(tmp_path):
    audio = tmp_path / "v.ogg"
    audio.write_bytes((LESSON / "en.ogg").read_bytes())
    body = "items:\n  - {{id: a, prompt: p, audio: v.ogg, {extra}}}\n"
    base = plan(load_manifest(_write(tmp_path, body.format(extra="tags: {x: '1'}"))))[0].fingerprint
    retag = plan(load_manifest(_write(tmp_path, body.format(extra="tags: {x: '2'}"))))[0].fingerprint
    reseed = plan(load_manifest(_write(tmp_path, body.format(extra="seed: 5"))))[0].fingerprint
    audio.write_bytes((LESSON / "en.ogg").read_bytes() + b"\0")
    touched = plan(load_manifest(_write(tmp_path, body.format(extra="tags: {x: '1'}"))))[0].fingerprint
    assert base == retag and len({base, reseed, touched}) == 3


def test_parquet_manifest_with_sidecar_defaults():
    manifest = load_manifest(EXAMPLES / "personalize" / "personalize.parquet")
    assert validate(manifest) == []
    planned = plan(manifest)
    assert [p.id for p in planned] == ["welcome-c001", "welcome-c002", "welcome-c003"]
    first = planned[0].item
    assert first.audio_max_duration == 4.0 and first.tags == {"customer_id": "c001", "city": "Lisbon"}
    assert "greets Ada" in first.prompt and first.num_frames == 100  # 4.0 s at 25 fps, shown whole
    assert planned[0].window_plan[0].rendered == 105  # the next 8k+1 that holds 100


def _finished(minutes: int) -> dict:
    t = datetime(2026, 11, 21, tzinfo=UTC) + timedelta(minutes=minutes)
    return {"started_at": t - timedelta(seconds=30), "finished_at": t}


def test_results_round_trip_latest_attempt_and_resume(tmp_path):
    planned = plan(load_manifest(LESSON / "lesson.yaml"))
    results = str(tmp_path / "results")
    first = ShardRecorder(results, "run-1", "s1", shard_id=0, attempt=0)
    first.add(result_row(planned[0], status="ok", output_uri="videos/lesson03-en.mp4", **_finished(1)))
    first.add(
        result_row(planned[1], status="failed", error_type="RenderInputError", error_message="audio: x", **_finished(2))
    )
    assert {p.id for p in still_to_render(planned, results)} == {"lesson03-de", "lesson03-es"}
    retry = ShardRecorder(results, "run-1", "s1", shard_id=0, attempt=1)
    retry.add(result_row(planned[1], status="ok", timings={"stage_1": 1.5}, **_finished(5)))
    table = read_results(results)
    assert table.num_rows == 3
    latest = {r["item_id"]: r for r in latest_attempts(table).to_pylist()}
    assert latest["lesson03-de"]["status"] == "ok" and latest["lesson03-de"]["attempt"] == 1
    assert dict(latest["lesson03-de"]["timings"]) == {"stage_1": 1.5}
    assert [p.id for p in still_to_render(planned, results)] == ["lesson03-es"]
    assert len(list((tmp_path / "results").iterdir())) == 2  # one file per shard attempt, no temporaries


def test_results_read_with_plain_pyarrow_and_pandas_without_this_project(tmp_path):
    planned = plan(load_manifest(LESSON / "lesson.yaml"))
    recorder = ShardRecorder(str(tmp_path / "results"), "run-1", "s1", shard_id=3, attempt=0)
    for p in planned:
        recorder.add(result_row(p, status="ok", **_finished(1)))
    script = textwrap.dedent(f"""
        import sys, pyarrow.dataset as ds, pandas as pd
        table = ds.dataset({str(tmp_path / "results")!r}, format="parquet").to_table()
        frame = pd.read_parquet({str(tmp_path / "results")!r})
        assert not any(m.startswith(("ltxcore", "manifests", "runstore", "storage", "ray_jobs")) for m in sys.modules)
        print(table.num_rows, len(frame), sorted(frame["item_id"]), frame["video_cfg_scale"].tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split()[:2] == ["3", "3"]
    assert pq.read_schema(next((tmp_path / "results").iterdir())).field("seed").type == "int64"


def _laughs(tmp_path: Path, levels: int = 9) -> Path:
    """A "billion laughs" manifest: each level a list of ten aliases of the one before, 10**levels values."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    lines += ["items:", "  - id: a", "    audio: a.ogg", "    prompt: p", f"    video_stg_blocks: *l{levels}"]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_billion_laughs_manifest_fails_fast_naming_the_file_and_the_limit(tmp_path, capsys):
    path = _laughs(tmp_path)
    tracemalloc.start()
    start = time.perf_counter()
    assert cli_main(["validate", str(path)]) == 1
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    message = capsys.readouterr().err
    assert str(path) in message and "expands to more than 5,000,000 values" in message and "aliases" in message
    assert seconds < 2 and peak < 20 * 2**20


def test_aliases_within_the_limit_load_as_written(tmp_path):
    manifest = load_manifest(_laughs(tmp_path, levels=1))
    assert manifest.entries[0].data["video_stg_blocks"] == [["lol"] * 10] * 10


@pytest.mark.parametrize(
    ("text", "limit", "words"),
    [
        ("items: " + "[" * 200 + "]" * 200, None, "deeper than 64 levels"),
        ("items: &a [*a]", None, "deeper than 64 levels"),  # an alias of itself nests without end
        ("items: [{id: a}, {id: b}, {id: c}]", ("manifests.load.MAX_ITEMS", 2), "has 3 items, over the limit of 2"),
        (
            "items: []\n#" + "-" * 2**20,
            ("manifests.safe_yaml.MAX_FILE_BYTES", 2**20),
            "is 1.0 MiB, over the 1 MiB limit",
        ),
    ],
)
def test_yaml_past_a_limit_is_refused_with_the_limit(tmp_path, monkeypatch, text, limit, words):
    if limit:
        monkeypatch.setattr(*limit)
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_a_parquet_manifest_past_the_item_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("manifests.load.MAX_ITEMS", 2)
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"]}), path)
    with pytest.raises(ManifestError, match="has 3 items, over the limit of 2"):
        load_manifest(path)


def test_one_pass_reports_a_type_error_and_the_other_fields_problems_together(tmp_path):
    path = tmp_path / "m.yaml"
    item = {"id": "a", "audio": str(EXAMPLES / "lesson" / "en.ogg"), "prompt": "p", "height": "tall"}
    path.write_text(yaml.safe_dump({"items": [{**item, "frame_rate": 500, "widht": 512, "image": "gone.png"}]}))
    fields = [p.field for p in validate(load_manifest(path))]
    assert fields == ["widht", "height", "frame_rate", "image"]  # a misspelt field first (a column of the
    # user's own, far from every field, would be a tag: test_extra_columns)
