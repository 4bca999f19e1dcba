"""User LoRAs in manifests: YAML, Parquet (a list<struct> column), --set and the builders; validation against
the checkpoint's header; fingerprints; the planner's grouping; the results table, the report and a worker."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import LESSON, QUICK

from fixtures.random_bundle import save_safetensors, write_random_lora
from ltxcore.bundle import RELEASED_NAMES
from manifests.builders import BuildError, build_personalization, parse_lora_cell
from manifests.item import arrow_schema
from manifests.load import load_manifest, set_overrides
from manifests.validate import validate
from ray_jobs.actor import RenderActor, WorkerSettings
from ray_jobs.cli import main
from ray_jobs.report import Card, Shared, card_data
from ray_jobs.shards import Shard, make_shards
from runstore.plan import fingerprint, plan
from runstore.results import RESULT_SCHEMA, read_results, result_row
from runstore.run_folder import RunFolder

EN = str(LESSON / "en.ogg")


@pytest.fixture(scope="module")
def lora_files(tiny_bundle, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lora-files")
    return {
        "brand": write_random_lora(tiny_bundle, folder / "brand.safetensors", 4, seed=1),
        "anna": write_random_lora(tiny_bundle, folder / "anna.safetensors", 4, ("attn1.",), seed=2),
    }


def _manifest(tmp_path: Path, items: list[dict], defaults: dict | None = None, model: dict | None = None) -> Path:
    body = {"defaults": {"audio": EN, "prompt": "A presenter", "num_frames": 17, **(defaults or {})}, "items": items}
    if model:
        body["model"] = model
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _loras(planned) -> dict[str, list[tuple[str, float]]]:
    return {p.id: [(lora.path, lora.strength) for lora in p.item.loras] for p in planned}


def test_yaml_set_and_parquet_give_the_same_resolved_loras(tmp_path, lora_files):
    brand, anna = str(lora_files["brand"]), str(lora_files["anna"])
    (tmp_path / "loras").mkdir()
    os.link(anna, tmp_path / "loras" / "anna.safetensors")
    local_anna = str(tmp_path / "loras" / "anna.safetensors")
    items = [{"id": "a"}, {"id": "b", "loras": [{"path": "loras/anna.safetensors", "strength": 0.5}]}, {"id": "c"}]
    items[2]["loras"] = []
    path = _manifest(tmp_path, items, {"loras": [{"path": brand}]})
    expected = {"a": [(brand, 1.0)], "b": [(local_anna, 0.5)], "c": []}  # relative to the manifest; [] is none
    assert validate(load_manifest(path)) == []
    assert _loras(plan(load_manifest(path))) == expected

    overrides = set_overrides(["loras=[{path: loras/anna.safetensors, strength: 0.8}]"])
    assert _loras(plan(load_manifest(path, overrides=overrides)))["a"] == [(local_anna, 0.8)]

    rows = [
        {"id": "a", "audio": EN, "prompt": "p", "loras": None},  # null: the defaults' list
        {"id": "b", "audio": EN, "prompt": "p", "loras": [{"path": "loras/anna.safetensors", "strength": 0.5}]},
        {"id": "c", "audio": EN, "prompt": "p", "loras": []},
    ]
    schema = pa.schema([arrow_schema().field(n) for n in ("id", "audio", "prompt", "loras")])
    assert str(schema.field("loras").type) == "list<item: struct<path: string, strength: double>>"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "m.parquet")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"defaults": {"num_frames": 17, "loras": [{"path": brand}]}}))
    assert _loras(plan(load_manifest(tmp_path / "m.parquet"))) == expected


@pytest.mark.parametrize(
    ("loras", "expected"),
    [
        ("x", "field 'loras': must be a list of {path, strength} entries, got 'x'."),
        (["x"], "field 'loras[0]': must be a mapping with path, strength, got 'x'."),
        ([{"path": "{brand}", "strength": "high"}], "field 'loras[0].strength': must be a number, got 'high'."),
        ([{"strength": 1}], "field 'loras[0].path': is required."),
        ([{"path": "{brand}", "strength": 80}], "field 'loras': {brand}: strength must be between -10 and 10, got 80."),
        ([{"path": "{brand}"}, {"path": "{brand}"}], "field 'loras': lists {brand} twice; give it once"),
        ([{"path": "/no/such.safetensors"}], "field 'loras': file /no/such.safetensors does not exist"),
        ([{"path": "{folder}/style.ckpt"}], "field 'loras': {folder}/style.ckpt is not a .safetensors file"),
    ],
)
def test_each_lora_field_rule(tmp_path, lora_files, loras, expected):
    fill = {"brand": str(lora_files["brand"]), "folder": str(tmp_path)}
    text = yaml.safe_dump(loras).replace("{brand}", fill["brand"]).replace("{folder}", fill["folder"])
    loras = yaml.safe_load(text)  # the placeholders filled in
    messages = [str(p) for p in validate(load_manifest(_manifest(tmp_path, [{"id": "a", "loras": loras}])))]
    assert len(messages) == 1 and messages[0].startswith("item 'a' (line 6), ")
    assert expected.replace("{brand}", fill["brand"]).replace("{folder}", fill["folder"]) in messages[0]


def test_validation_names_the_item_file_and_layer_of_a_lora_that_does_not_fit(tmp_path, tiny_bundle, lora_files):
    bad = tmp_path / "pickle.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes, not safetensors")
    lacking, misshapen = tmp_path / "lacking.safetensors", tmp_path / "misshapen.safetensors"
    stem = "diffusion_model.transformer_blocks.{}.attn1.to_q.lora_{}.weight"
    save_safetensors(lacking, {stem.format(7, "A"): torch.zeros(2, 64), stem.format(7, "B"): torch.zeros(64, 2)}, {})
    save_safetensors(misshapen, {stem.format(0, "A"): torch.zeros(2, 65), stem.format(0, "B"): torch.zeros(64, 2)}, {})
    half = tmp_path / "half.safetensors"
    save_safetensors(half, {stem.format(0, "A"): torch.zeros(2, 64)}, {})
    items = [{"id": n, "loras": [{"path": str(p)}]} for n, p in [("ok", lora_files["brand"]), ("bad", bad)]]
    items += [{"id": n, "loras": [{"path": str(p)}]} for n, p in [("lacking", lacking), ("mis", misshapen)]]
    items += [{"id": "half", "loras": [{"path": str(half)}]}]
    model = {"bundle": str(Path(tiny_bundle.checkpoint_path).parent)}
    messages = [str(p) for p in validate(load_manifest(_manifest(tmp_path, items, {"video_stg_blocks": [1]}, model)))]
    expected = [
        ("bad", bad, " is not a safetensors file (bad header length"),
        ("lacking", lacking, ": targets layer transformer_blocks.7.attn1.to_q, which the model lacks;"),
        ("mis", misshapen, ": layer transformer_blocks.0.attn1.to_q is 64x65 in the LoRA but 64x64 in the model."),
        ("half", half, ": layer transformer_blocks.0.attn1.to_q has lora_A without lora_B."),
    ]
    assert len(messages) == len(expected)
    for message, (item_id, path, problem) in zip(messages, expected, strict=True):
        assert message.startswith(f"item '{item_id}' (line ") and f"field 'loras': {path}{problem}" in message
    without_model = [str(p) for p in validate(load_manifest(_manifest(tmp_path, items)))]
    assert len(without_model) == 2  # no bundle: the file's own format is checked, its fit is not
    remote = _manifest(tmp_path, [{"id": "r", "loras": [{"path": f"file://{tmp_path}/gone.safetensors"}]}])
    assert [p.message for p in validate(load_manifest(remote))] == [
        f"file://{tmp_path}/gone.safetensors does not exist."
    ]


def test_shards_hold_one_lora_set_whatever_the_strengths(tmp_path, lora_files):
    brand, anna = str(lora_files["brand"]), str(lora_files["anna"])
    sets = [[brand], [], [brand], [brand, anna], [anna, brand], [brand], []]
    items = [{"id": f"i{n}", "loras": [{"path": p, "strength": 0.1 * n} for p in s]} for n, s in enumerate(sets)]
    planned = plan(load_manifest(_manifest(tmp_path, items)))
    shards = make_shards(planned, shard_size=8)
    assert [[p.id for p in s.items] for s in shards] == [["i0", "i2", "i5"], ["i1", "i6"], ["i3", "i4"]]


def test_fingerprints_follow_each_loras_file_and_strength(tmp_path, lora_files):
    brand, anna = str(lora_files["brand"]), str(lora_files["anna"])

    def fp(loras: list[dict]) -> str:
        return plan(load_manifest(_manifest(tmp_path, [{"id": "a", "loras": loras}])))[0].fingerprint

    base = fp([{"path": brand, "strength": 0.8}])
    assert fp([{"path": brand, "strength": 0.8}]) == base
    assert fp([{"path": brand, "strength": 0.5}]) != base
    assert fp([{"path": anna, "strength": 0.8}]) != base
    assert fp([]) != base
    stat = os.stat(brand)
    os.utime(brand, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # the same name, a new file
    assert fp([{"path": brand, "strength": 0.8}]) != base
    item = plan(load_manifest(_manifest(tmp_path, [{"id": "a"}])))[0]
    values = {k: v for k, v in item.item.values.items() if k != "loras"}  # as planned before LoRAs existed
    media = {"audio": {"size": os.stat(EN).st_size, "mtime_ns": os.stat(EN).st_mtime_ns}, "image": None}
    assert item.fingerprint == fingerprint(values, media, None)


def test_results_table_and_report_hold_the_resolved_loras(tmp_path, lora_files):
    brand = str(lora_files["brand"])
    planned = plan(load_manifest(_manifest(tmp_path, [{"id": "a", "loras": [{"path": brand, "strength": 0.8}]}])))[0]
    now = datetime.now(UTC)
    row = result_row(planned, status="ok", started_at=now, finished_at=now)
    table = pa.Table.from_pylist([row], schema=RESULT_SCHEMA)
    assert table.column("loras").to_pylist() == [[{"path": brand, "strength": 0.8}]]
    shared = Shared()
    card = card_data(Card("a", "ok", {**planned.item.values, **table.to_pylist()[0]}, {}), shared)
    assert ("LoRAs", "brand.safetensors 0.8") in shared.values[card["look"]]["facts"]


def test_builders_write_loras(tmp_path, lora_files, capsys):
    brand, anna = lora_files["brand"], str(lora_files["anna"])
    out = tmp_path / "lessons.yaml"
    args = ["lessons", "--image", str(LESSON / "presenter.png"), "--audio", str(LESSON), "--prompt", "A teacher"]
    assert main([*args, "--lora", str(brand), "0.6", "--lora", anna, "-o", str(out)]) == 0
    defaults = yaml.safe_load(out.read_text())["defaults"]
    assert defaults["loras"] == [{"path": str(brand), "strength": 0.6}, {"path": anna, "strength": 1.0}]
    assert main([*args, "--lora", "missing.safetensors", "-o", str(out)]) == 2
    assert "--lora: LoRA file 'missing.safetensors' does not exist." in capsys.readouterr().err
    assert main([*args, "--lora", anna, "high", "-o", str(out)]) == 2
    assert "the strength must be a number, e.g. 0.8." in capsys.readouterr().err

    assert parse_lora_cell("s3://bucket/brand.safetensors:0.5") == ("s3://bucket/brand.safetensors", 0.5)
    assert parse_lora_cell("s3://bucket/brand.safetensors") == ("s3://bucket/brand.safetensors", 1.0)
    assert parse_lora_cell("  ") is None
    csv = tmp_path / "people.csv"
    (tmp_path / "voice.ogg").write_bytes(Path(EN).read_bytes())
    os.link(brand, tmp_path / "brand.safetensors")
    csv.write_text(
        "name,voice,face\nAnna,voice.ogg,brand.safetensors:0.7\nBen,voice.ogg,\nCleo,voice.ogg,nope.safetensors\n"
    )
    with pytest.raises(BuildError) as caught:
        build_personalization(csv, "Hi {name}", tmp_path / "p.parquet", audio_column="voice", lora_columns=("face",))
    assert caught.value.problems == ["people.csv line 4 column 'face': LoRA file 'nope.safetensors' does not exist."]
    csv.write_text("name,voice,face\nAnna,voice.ogg,brand.safetensors:0.7\nBen,voice.ogg,\n")
    out = build_personalization(csv, "Hi {name}", tmp_path / "p.parquet", audio_column="voice", lora_columns=("face",))
    loras = pq.read_table(out).column("loras").to_pylist()
    assert loras == [[{"path": str(tmp_path / "brand.safetensors"), "strength": 0.7}], None]


def test_a_worker_fetches_a_lora_uri_once_and_records_it(tiny_bundle, tmp_path, lora_files):
    uri = f"file://{lora_files['anna']}"
    fast = {**QUICK, "num_inference_steps": 1, "width": 128, "num_frames": 9}
    path = _manifest(tmp_path, [{"id": "a", "loras": [{"path": uri, "strength": 0.5}]}], fast)
    planned = plan(load_manifest(path))
    run = RunFolder(str(tmp_path / "run"))
    run_id = run.record_submission([], planned, {})
    run.claim("s1")
    paths = {name: getattr(tiny_bundle, name) for name in RELEASED_NAMES}
    actor = RenderActor(WorkerSettings(paths, "none", "cpu", run.uri, run_id, "s1", max_loras=1))
    assert [s.status for s in actor(Shard(0, tuple(planned)))] == ["ok"]
    assert sorted(p.name for p in actor.scratch.rglob("*.safetensors")) == ["anna.safetensors"]
    assert actor.engine.adapters.reads == 1 and list(actor.engine.adapters.loaded) == [actor.media[uri]]
    assert read_results(run.results_uri).column("loras").to_pylist() == [[{"path": uri, "strength": 0.5}]]
