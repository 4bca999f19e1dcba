"""The item model and the JSON Schema derived from it: the committed schema is current, accepts every example
manifest and what the builders write, and rejects the broken example; pydantic's errors read as ours."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
import yaml
from conftest import EXAMPLES, LESSON, REPO

from manifests.builders import build_lessons
from manifests.json_schema import manifest_schema, schema_text
from manifests.load import TOP_LEVEL_KEYS, load_manifest
from manifests.validate import validate
from ray_jobs.cli import main
from runstore.plan import plan

VALIDATOR = jsonschema.Draft202012Validator(manifest_schema())


def _errors(data: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def test_committed_schema_is_what_the_cli_prints(capsys):
    jsonschema.Draft202012Validator.check_schema(manifest_schema())
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text() == (REPO / "ltx-batch.schema.json").read_text()
    assert tuple(json.loads(printed)["properties"]) == TOP_LEVEL_KEYS


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: p.parent.name)
def test_schema_accepts_every_example_and_rejects_the_broken_one(path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../../../ltx-batch.schema.json\n")
    assert (path.parent / "../../../ltx-batch.schema.json").resolve() == REPO / "ltx-batch.schema.json"
    errors = _errors(yaml.safe_load(text))
    if path.parent.name == "broken":
        assert errors == ["items/6/video_guider: Additional properties are not allowed ('cfg_sacle' was unexpected)"]
    else:
        assert errors == []


def test_schema_accepts_what_the_lessons_builder_writes(tmp_path):
    folder = tmp_path / "lesson07"
    folder.mkdir()
    shutil.copy(LESSON / "de.mp3", folder / "de.mp3")
    out = build_lessons(LESSON / "presenter.png", folder, "A teacher explains", tmp_path / "lessons.yaml")
    assert _errors(yaml.safe_load(out.read_text())) == []


def test_schema_checks_names_types_and_sections():
    good = {"id": "a", "audio": "a.ogg", "seed": 3, "video_guider": {"cfg_scale": 2}, "tags": {"x": "y"}}
    assert _errors({"run_seed": 1, "model": {"bundle": "/m", "quantization": "fp8-cast"}, "items": [good]}) == []
    assert _errors({"model": None, "defaults": None, "items": [good]}) == []  # empty sections, as the loader reads
    assert _errors({"items": [{**good, "height": "512"}]}) == ["items/0/height: '512' is not of type 'integer'"]
    assert _errors({"items": [{"audio": "a.ogg"}]}) == ["items/0: 'id' is a required property"]
    assert _errors({"modle": {}}) == [": Additional properties are not allowed ('modle' was unexpected)"]
    assert _errors({"model": {"quantization": "int4"}})[0].startswith("model/quantization: 'int4' is not valid")


def test_the_fields_the_item_model_marks_as_files_resolve_against_the_manifest(tmp_path):
    """audio, image and each path of images name files: written relative, they are found beside the manifest, and
    a missing one is named with its field; a text field that looks like a file name stays as written."""
    items = [
        {"id": "one", "audio": "voice.wav", "image": "face.png", "prompt": "face.png"},
        {"id": "many", "audio": "voice.wav", "images": [{"path": "pose.png"}], "prompt": "p"},
    ]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"items": items}))
    manifest = load_manifest(tmp_path / "m.yaml")
    missing = "file {} does not exist or is not a file."
    assert [str(p) for p in validate(manifest)] == [
        f"item 'one' (line 2), field 'audio': {missing.format(tmp_path / 'voice.wav')}",
        f"item 'one' (line 2), field 'image': {missing.format(tmp_path / 'face.png')}",
        f"item 'many' (line 6), field 'audio': {missing.format(tmp_path / 'voice.wav')}",
        f"item 'many' (line 6), field 'images[0].path': {missing.format(tmp_path / 'pose.png')}",
    ]
    assert manifest.entries[0].data["prompt"] == "face.png"


def _messages(tmp_path, entry: dict) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"items": [{"id": "a", "audio": str(LESSON / "en.ogg"), "prompt": "p", **entry}]}))
    return [str(p) for p in validate(load_manifest(path))]


def test_type_errors_name_the_item_and_field_once_each(tmp_path):
    messages = _messages(tmp_path, {"height": None, "tags": {"lesson": 3}, "video_stg_blocks": [1, "x"], "sede": 1})
    assert messages == [
        "item 'a' (line 2), field 'sede': is not a known field. Did you mean 'seed'?",
        "item 'a' (line 2), field 'height': must not be empty.",
        "item 'a' (line 2), field 'video_stg_blocks': must be a list of whole numbers, got [1, 'x'].",
        "item 'a' (line 2), field 'tags': must be a mapping of labels, got {'lesson': 3}.",
    ]


def test_whole_floats_are_whole_numbers_and_numbers_keep_their_value(tmp_path):
    assert _messages(tmp_path, {"height": 512.0, "width": 768.0, "num_frames": 17.0, "frame_rate": 25}) == []
    planned = plan(load_manifest(tmp_path / "m.yaml"))[0].item
    assert (planned.height, planned.num_frames) == (512, 17) and isinstance(planned.height, int)
    assert _messages(tmp_path, {"distilled_lora_strength": 9}) == [
        "item 'a' (line 2), field 'distilled_lora_strength': must be between 0 and 2, got 9."
    ]
