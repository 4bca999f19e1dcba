"""Columns users already have: a manifest's keys or columns that are no item field are kept as tags (strings)
with one warning for the manifest; a misspelt field is still an error, named once with its lines or rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LESSON

from manifests.item_checks import typo_of
from manifests.load import load_manifest
from manifests.validate import check
from ray_jobs.cli import main as cli_main
from runstore import invalid
from runstore.plan import plan
from runstore.results import result_row

EN = str(LESSON / "en.ogg")
SHORT = {"num_frames": 9, "height": 64, "width": 64}  # planning needs no pause search


def _parquet(tmp_path, **columns) -> pa.Table:
    n = len(columns["id"])
    table = pa.table({"audio": [EN] * n, "prompt": ["p"] * n, **{k: [v] * n for k, v in SHORT.items()}, **columns})
    pq.write_table(table, tmp_path / "m.parquet")
    return table


def _yaml(tmp_path, defaults: dict, items: list[dict]) -> None:
    body = {"defaults": {"audio": EN, "prompt": "p", **SHORT, **defaults}, "items": items}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body, sort_keys=False))


def _check(path) -> tuple[list[str], list[str]]:
    problems, warnings = check(load_manifest(path))
    return [str(p) for p in problems], [str(w) for w in warnings]


def test_parquet_extra_columns_are_tags_with_one_warning(tmp_path):
    _parquet(
        tmp_path,
        id=["a", "b", "c"],
        city=["Paris", None, "Lyon"],
        segment=[1, 2, 3],
        score=[0.5, float("nan"), 2.0],
        vip=[True, False, None],
        note=["", "x", "y"],
    )
    assert _check(tmp_path / "m.parquet") == (
        [],
        ["manifest: columns city, segment, score, vip, note are not item fields: kept as tags."],
    )
    manifest = load_manifest(tmp_path / "m.parquet")
    planned = plan(manifest)
    assert [p.item.tags for p in planned] == [
        {"city": "Paris", "segment": "1", "score": "0.5", "vip": "true"},  # an empty value is left out
        {"segment": "2", "vip": "false", "note": "x"},  # so are null and NaN
        {"city": "Lyon", "segment": "3", "score": "2.0", "note": "y"},
    ]
    row = result_row(planned[0], status="ok")  # what the results table (and the report) carries
    assert row["tags"] == [("city", "Paris"), ("segment", "1"), ("score", "0.5"), ("vip", "true")]


def test_parquet_explicit_tags_win_over_a_column_of_the_same_name(tmp_path):
    tags = pa.array([[("city", "Rome"), ("lang", "it")], None], type=pa.map_(pa.string(), pa.string()))
    _parquet(tmp_path, id=["a", "b"], city=["Paris", "Lyon"], tags=tags)
    assert _check(tmp_path / "m.parquet") == ([], ["manifest: column city is not an item field: kept as a tag."])
    assert [p.item.tags for p in plan(load_manifest(tmp_path / "m.parquet"))] == [
        {"city": "Rome", "lang": "it"},
        {"city": "Lyon"},
    ]


def test_yaml_extra_keys_in_items_and_defaults_are_tags(tmp_path):
    items = [
        {"id": "a", "city": "Paris", "customer_id": 17},
        {"id": "b", "city": "Lyon", "tags": {"city": "Rome"}},  # explicit tags win on a clash
        {"id": "c", "keywords": ["x", "y"], "campaign": "spring"},  # an item's column beats the defaults'
    ]
    _yaml(tmp_path, {"campaign": "winter", "tags": {"lang": "en"}}, items)
    problems, warnings = _check(tmp_path / "m.yaml")
    assert problems == []
    assert warnings == ["manifest: columns campaign, city, customer_id, keywords are not item fields: kept as tags."]
    manifest = load_manifest(tmp_path / "m.yaml")
    assert "campaign" not in manifest.defaults
    assert [p.item.tags for p in plan(manifest)] == [
        {"campaign": "winter", "city": "Paris", "customer_id": "17", "lang": "en"},  # the defaults' tags too
        {"campaign": "winter", "city": "Rome"},  # its own tags replace the defaults', as without extra columns
        {"campaign": "spring", "keywords": '["x", "y"]', "lang": "en"},
    ]


def test_a_misspelt_column_is_one_error_naming_its_rows_and_the_field(tmp_path):
    _parquet(tmp_path, id=[f"i{n}" for n in range(30)], promt=["x"] * 29 + [None])
    problems, warnings = _check(tmp_path / "m.parquet")
    assert problems == ["29 items (rows 1-29), field 'promt': is not a known field. Did you mean 'prompt'?"]
    assert warnings == []


def test_a_misspelt_key_in_yaml_names_its_lines(tmp_path):
    _yaml(tmp_path, {}, [{"id": "a", "sed": 1}, {"id": "b"}, {"id": "c", "sed": 2}, {"id": "d", "Prompt": "q"}])
    problems, _ = _check(tmp_path / "m.yaml")
    assert problems == [
        "2 items (lines 8, 11), field 'sed': is not a known field. Did you mean 'seed'?",
        "item 'd' (line 13), field 'Prompt': is not a known field. Did you mean 'prompt'?",
    ]


def test_typos_and_extra_columns_together(tmp_path):
    _yaml(tmp_path, {"sede": 3, "region": "north"}, [{"id": "a", "city": "Paris", "widht": 64}, {"id": "b"}])
    problems, warnings = _check(tmp_path / "m.yaml")
    assert problems == [
        "defaults, field 'sede': is not a known field. Did you mean 'seed'?",
        "item 'a' (line 10), field 'widht': is not a known field. Did you mean 'width'?",
    ]
    assert warnings == ["manifest: columns region, city are not item fields: kept as tags."]


def test_skip_invalid_sets_aside_the_items_of_a_misspelt_column(tmp_path):
    _parquet(tmp_path, id=["a", "b", "c"], promt=["x", None, "y"], city=["P", "Q", "R"])
    manifest = load_manifest(tmp_path / "m.parquet")
    problems, _ = check(manifest)
    valid, set_aside, rest = invalid.set_aside(manifest, problems)
    assert [e.data["id"] for e in valid.entries] == ["b"] and rest == []
    assert [s.item_id for s in set_aside.items] == ["a", "c"]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("sed", "seed"),
        ("sede", "seed"),
        ("promt", "prompt"),
        ("Prompt", "prompt"),
        ("ID", "id"),
        ("widht", "width"),
        ("video_cfg_sacle", "video_cfg_scale"),
        ("cfg_scale", "video_cfg_scale"),  # a guider field written flat without its prefix
        ("pipline", "pipeline"),
        ("city", None),
        ("segment", None),
        ("language", None),
        ("customer_id", None),
        ("prompt_id", None),  # a field as one word of the name: a column of its own
        ("image_url", None),
        ("uid", None),  # id is too short to guess from
        ("name", None),
    ],
)
def test_the_typo_rule(name, field):
    assert typo_of(name) == field


def test_validate_prints_the_warning_once_and_passes(tmp_path, capsys):
    _parquet(tmp_path, id=[f"i{n}" for n in range(20)], city=["Paris"] * 20, segment=["A"] * 20)
    assert cli_main(["validate", str(tmp_path / "m.parquet")]) == 0
    out = capsys.readouterr().out
    assert "20 items, no problems." in out
    assert out.count("not item fields") == 1 and "1 warning(s), not errors" in out
