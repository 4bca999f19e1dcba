"""What ``validate`` prints is sized for a person: a few lines per kind of problem, totals for the plan, and
every line only when asked (``--verbose``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ray_jobs.cli import main as cli_main

LESSON = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "lesson"


def _manifest(folder: Path, items: list[dict]) -> str:
    shutil.copy(LESSON / "en.ogg", folder / "en.ogg")
    shutil.copy(LESSON / "presenter.png", folder / "presenter.png")
    body = {"defaults": {"image": "presenter.png", "prompt": "A presenter"}, "items": items}
    (folder / "m.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return str(folder / "m.yaml")


def test_many_problems_of_two_kinds_are_two_lines_naming_where_and_verbose_lists_each(tmp_path, capsys):
    items = [{"id": f"a{i}", "audio": f"gone-{i}.wav"} for i in range(30)]
    items += [{"id": f"s{i}", "audio": "en.ogg", "seed": -1 - i} for i in range(30)]
    path = _manifest(tmp_path, items)
    assert cli_main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("60 problem(s) in 60 items:") and len(out) <= 6, out
    audio = next(line for line in out if "field 'audio'" in line)
    seed = next(line for line in out if "field 'seed'" in line)
    assert audio.startswith("  - 30 items (lines ") and "gone-0.wav" in audio and "the others alike" in audio
    assert seed.startswith("  - 30 items (lines ")
    assert any("--verbose" in line for line in out)
    assert cli_main(["validate", path, "--verbose"]) == 1
    every = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  - item ")]
    assert len(every) == 60 and any("gone-29.wav" in line for line in every)


def test_a_few_problems_are_each_listed_as_before(tmp_path, capsys):
    path = _manifest(tmp_path, [{"id": "a", "audio": "gone.wav"}, {"id": "b", "audio": "en.ogg", "seed": -1}])
    assert cli_main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  - item 'a' (line ") and "field 'audio'" in out[1]
    assert out[2].startswith("  - item 'b' (line ") and "field 'seed'" in out[2] and len(out) == 3


def test_a_large_valid_manifest_says_its_totals_in_a_few_lines(tmp_path, capsys):
    path = _manifest(tmp_path, [{"id": f"c{i}", "audio": "en.ogg", "audio_max_duration": 2.0} for i in range(80)])
    assert cli_main(["validate", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("80 items, no problems.") and len(out) <= 5, out
    assert out[1] == "plan: 80 items, 160.0 s of video in 80 window(s), ~0.38 GPU-hours on one H200 (estimated)"
    assert "--verbose" in out[-1]
    assert cli_main(["validate", path, "--verbose"]) == 0
    assert sum(line.startswith("c") for line in capsys.readouterr().out.splitlines()) == 80
