"""Several images, enhancement and the frozen-audio setting in manifests: YAML, Parquet list<struct> columns,
--set, validation messages naming the item, the list index and the field, and fingerprints of older runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LESSON
from PIL import Image

from ltxcore.bundle import RELEASED_NAMES
from ltxcore.request import ImageCondition
from manifests.item import IMAGE_STRUCT, arrow_schema
from manifests.load import load_manifest, set_overrides
from manifests.validate import validate
from runstore.plan import HASHED_WHEN_SET, fingerprint, plan, plan_table
from runstore.run_folder import RunFolder

EN = str(LESSON / "en.ogg")  # 7.25 s: at 24 fps, 174 frames cover it (0 to 173)


def _pose(folder: Path, name: str = "pose.png", mode: str = "RGB") -> str:
    pixels = np.random.default_rng(3).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(folder / name)
    return name


def _messages(tmp_path, items: list[dict], defaults: dict | None = None, model: dict | None = None) -> list[str]:
    body = {"defaults": {"prompt": "p", "audio": EN, **(defaults or {})}, "items": items}
    if model:
        body["model"] = model
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(body))
    return [str(p) for p in validate(load_manifest(path))]


def test_yaml_images_resolve_relative_paths_and_reach_the_engine(tmp_path):
    _pose(tmp_path)
    items = [{"id": "a", "images": [{"path": str(LESSON / "presenter.png")}, {"path": "pose.png", "frame": 48}]}]
    assert _messages(tmp_path, items) == []
    item = plan(load_manifest(tmp_path / "m.yaml"))[0].item
    request = item.to_request()
    assert request.images == (
        ImageCondition(str(LESSON / "presenter.png"), 0, 1.0, 33),
        ImageCondition(str(tmp_path / "pose.png"), 48, 1.0, 33),
    )
    assert item.resolved_images == [vars(i) for i in request.images]


def test_parquet_list_of_structs_with_nulls_taking_defaults(tmp_path):
    _pose(tmp_path)
    schema = pa.schema([arrow_schema().field(n) for n in ("id", "audio", "prompt", "images", "enhance_prompt")])
    rows = [
        {"id": "a", "audio": EN, "prompt": "p", "images": [{"path": "pose.png", "frame": None, "strength": 0.5}]},
        {"id": "b", "audio": EN, "prompt": "p", "images": None, "enhance_prompt": None},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "m.parquet")
    assert schema.field("images").type == pa.list_(IMAGE_STRUCT)
    manifest = load_manifest(tmp_path / "m.parquet")
    assert validate(manifest) == []
    first, second = (p.item for p in plan(manifest))
    assert first.resolved_images == [{"path": str(tmp_path / "pose.png"), "frame": 0, "strength": 0.5, "crf": 33}]
    assert second.images is None and second.enhance_prompt is False and second.frozen_audio_sigma == "zero"


def test_set_gives_every_item_images_and_an_items_own_form_wins(tmp_path):
    _pose(tmp_path)
    overrides = set_overrides([f"images=[{{path: {tmp_path / 'pose.png'}, frame: 8}}]", "frozen_audio_sigma=step"])
    items = [{"id": "a"}, {"id": "b", "image": str(LESSON / "presenter.png")}]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"prompt": "p", "audio": EN}, "items": items}))
    manifest = load_manifest(path, overrides=overrides)
    assert validate(manifest) == []
    a, b = (p.item for p in plan(manifest))
    assert [i["frame"] for i in a.resolved_images] == [8] and a.frozen_audio_sigma == "step"
    assert b.images is None and b.resolved_images[0]["path"] == str(LESSON / "presenter.png")


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (
            [{"path": "P"}, {"path": "P", "frame": 174}],
            "field 'images[1].frame': is 174, past the last frame of the clip (173).",
        ),
        ([{"path": "P", "strength": 2}], "field 'images[0].strength': must be between 0 and 1, got 2."),
        ([{"path": "P", "frame": "x"}], "field 'images[0].frame': must be a whole number, got 'x'."),
        ([{"path": "P", "fram": 3}], "field 'images[0].fram': is not a known field. Did you mean 'frame'?"),
        ([{"frame": 3}], "field 'images[0].path': is required."),
        (["P"], "field 'images[0]': must be a mapping with path, frame, strength, crf, got 'P'."),
        ([{"path": "gone.png"}], "field 'images[0].path': file {tmp}/gone.png does not exist or is not a file."),
        (
            [{"path": "P"}, {"path": "not-an-image.png"}],
            "field 'images[1].path': {tmp}/not-an-image.png is not a readable image",
        ),
        (
            [{"path": "P"}, {"path": "sliver.png", "frame": 8}],
            "field 'images[1].path': {tmp}/sliver.png is 1x64 pixels, too small to condition on: re-compressed as "
            "H.264 (crf 33), which keeps colour per 2x2 block of pixels, an image needs at least 2 pixels each way.",
        ),
    ],
)
def test_image_list_problems_name_the_item_index_and_field(tmp_path, images, expected):
    _pose(tmp_path)
    Image.new("RGB", (1, 64)).save(tmp_path / "sliver.png")
    (tmp_path / "not-an-image.png").write_bytes(b"no pixels here" * 10)
    images = [{**i, "path": "pose.png"} if isinstance(i, dict) and i.get("path") == "P" else i for i in images]
    messages = _messages(tmp_path, [{"id": "a", "images": images}])
    expected = f"item 'a' (line 5), {expected.format(tmp=tmp_path)}"
    assert len(messages) == 1 and messages[0].startswith(expected), messages


def test_both_image_forms_in_one_item_is_an_error_naming_it(tmp_path):
    _pose(tmp_path)
    messages = _messages(tmp_path, [{"id": "a", "image": "pose.png", "images": [{"path": "pose.png"}]}])
    assert messages == [
        "item 'a' (line 5), field 'images': and image are both set; write every image in images, "
        "or one image with image."
    ]


def test_shorthand_frame_outside_the_clip_derived_from_the_audio(tmp_path):
    messages = _messages(tmp_path, [{"id": "a", "image": str(LESSON / "presenter.png"), "image_frame": 400}])
    assert messages == ["item 'a' (line 5), field 'image_frame': is 400, past the last frame (173)."]


def test_enhance_prompt_on_a_gemma_root_that_cannot_generate(tiny_bundle, tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    for role, name in RELEASED_NAMES.items():
        if role != "gemma_root":
            os.symlink(getattr(tiny_bundle, role), folder / name)
    shutil.copytree(tiny_bundle.gemma_root, folder / RELEASED_NAMES["gemma_root"])
    items = [{"id": "a", "enhance_prompt": True}, {"id": "b"}]
    tiny = {"video_stg_blocks": [1]}
    assert _messages(tmp_path, items, tiny, model={"bundle": str(folder)}) == []
    tokenizer_config = folder / RELEASED_NAMES["gemma_root"] / "tokenizer_config.json"
    config = json.loads(tokenizer_config.read_text())
    del config["chat_template"]
    tokenizer_config.write_text(json.dumps(config))
    messages = _messages(tmp_path, items, tiny, model={"bundle": str(folder)})
    assert len(messages) == 1
    assert messages[0].startswith("item 'a' (line 7), field 'enhance_prompt': needs the model's Gemma to generate text")
    assert "has no chat template" in messages[0]


def test_a_run_planned_before_these_settings_keeps_its_fingerprints_and_semantics(tmp_path):
    planned = plan(load_manifest(LESSON / "lesson.yaml"))
    old = [p.item.model_copy(update={"frozen_audio_sigma": "step"}) for p in planned]
    for item, p in zip(old, planned, strict=True):
        values = item.values
        media = {"audio": {"x": 1}, "image": None}
        before = {k: v for k, v in values.items() if k not in HASHED_WHEN_SET}  # what the plan held before
        assert fingerprint(values, media, None) == fingerprint(before, media, None)
        assert fingerprint(p.item.values, media, None) != fingerprint(before, media, None)  # zero differs
    run = RunFolder(str(tmp_path / "run"))
    run.record_submission([], planned, {})
    assert {p.item.frozen_audio_sigma for p in run.plan()} == {"zero"}
    assert run.run_info()["frozen_audio_sigma"] == "zero"
    table = plan_table(planned).drop_columns(list(HASHED_WHEN_SET))  # a plan.parquet written before them
    pq.write_table(table, tmp_path / "run" / "plan.parquet")
    info = {k: v for k, v in run.run_info().items() if k != "frozen_audio_sigma"}
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    older = RunFolder(str(tmp_path / "run"))  # as the next command reads it (run.json is read once per command)
    assert {(p.item.frozen_audio_sigma, p.item.images, p.item.enhance_prompt) for p in older.plan()} == {
        ("step", None, False)
    }


# (file name, mode): each saved in a format that keeps the mode; "P+alpha" is a palette with a transparent colour
IMAGE_MODES = [("p.png", "P"), ("p-alpha.png", "P+alpha"), ("l.png", "L"), ("l16.png", "I;16"), ("i.tif", "I")]
IMAGE_MODES += [("bw.png", "1"), ("rgba.png", "RGBA"), ("la.png", "LA"), ("cmyk.jpg", "CMYK")]


def image_file(folder: Path, name: str, mode: str) -> Path:
    """A 64x96 image of ``mode`` (converted from random RGB pixels), written as ``name``."""
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    if mode in ("I;16", "I"):
        levels = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # 16-bit grey levels
        image = Image.fromarray(levels if mode == "I;16" else levels.astype(np.int32))
    else:
        image = rgb.convert("P" if mode == "P+alpha" else mode)
    if mode == "P+alpha":
        image.save(folder / name, transparency=0)
    else:
        image.save(folder / name)
    return folder / name


@pytest.mark.parametrize(("name", "mode"), IMAGE_MODES)
def test_an_image_of_any_mode_passes_validation(tmp_path, name, mode):
    image_file(tmp_path, name, mode)
    assert _messages(tmp_path, [{"id": "a", "image": name}, {"id": "b", "images": [{"path": name, "frame": 8}]}]) == []


def test_a_sliver_of_an_image_conditions_without_re_compression(tmp_path):
    Image.new("RGB", (1, 64)).save(tmp_path / "sliver.png")
    assert _messages(tmp_path, [{"id": "a", "images": [{"path": "sliver.png", "crf": 0}]}]) == []
