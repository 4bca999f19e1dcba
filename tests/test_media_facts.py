"""A manifest's media are worked on once per distinct file: validation and the plan share what was found."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import yaml

from manifests.load import load_manifest
from manifests.media_facts import MediaFacts
from manifests.validate import check
from runstore.plan import plan
from tests.conftest import write_tone

LESSON = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "lesson"


def _campaign(folder: Path, items: int, audio: list[str], **defaults) -> Path:
    """``items`` rows over a few audio files and one image, as a campaign's table names them."""
    shutil.copy(LESSON / "presenter.png", folder / "presenter.png")
    entries = [{"id": f"c{i}", "audio": audio[i % len(audio)], "prompt": f"greets {i}"} for i in range(items)]
    defaults = {"image": "presenter.png", "height": 128, "width": 192, **defaults}
    manifest = {"defaults": defaults, "items": entries}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def _reads(facts: MediaFacts, kind: str) -> Counter[str]:
    return Counter({Path(uri.removeprefix("file://")).name: n for (k, uri), n in facts.reads.items() if k == kind})


def test_rows_that_share_files_probe_decode_and_identify_each_file_once(tmp_path):
    for name in ("de.mp3", "en.ogg"):
        shutil.copy(LESSON / name, tmp_path / name)
    manifest = load_manifest(_campaign(tmp_path, 40, ["de.mp3", "en.ogg"]))
    facts = MediaFacts()
    problems, _ = check(manifest, facts=facts)
    planned = plan(manifest, None, facts)
    assert not problems and len(planned) == 40
    assert _reads(facts, "probe") == {"de.mp3": 1, "en.ogg": 1}
    assert _reads(facts, "image") == {"presenter.png": 1}
    assert _reads(facts, "identity") == {"de.mp3": 1, "en.ogg": 1, "presenter.png": 1}
    # what was shared is what each would have found alone
    alone = plan(manifest)
    assert [(p.item, p.fingerprint, p.windows) for p in planned] == [(p.item, p.fingerprint, p.windows) for p in alone]


def test_a_remote_file_is_downloaded_once_for_its_length_and_its_pauses(tmp_path):
    lesson = write_tone(tmp_path / "lesson.wav", 12.0)
    uri = f"file://{lesson}"
    manifest = load_manifest(_campaign(tmp_path, 6, [uri], window_seconds=4.0))
    facts = MediaFacts()
    problems, _ = check(manifest, facts=facts)
    planned = plan(manifest, None, facts)
    assert not problems and all(len(p.windows) >= 3 for p in planned)  # windows of 4 s: pauses sought
    assert _reads(facts, "download") == {"lesson.wav": 1}
    assert _reads(facts, "probe") == {"lesson.wav": 1}
    assert _reads(facts, "lookup") == {"lesson.wav": 1}  # validation looks it up, and does not fetch it


def test_a_broken_file_is_one_problem_per_item_that_names_it(tmp_path):
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all")
    shutil.copy(LESSON / "en.ogg", tmp_path / "en.ogg")
    manifest = load_manifest(_campaign(tmp_path, 4, ["broken.mp3", "en.ogg"]))
    facts = MediaFacts()
    problems, _ = check(manifest, facts=facts)
    assert [(p.where.split()[1], p.field) for p in problems] == [("'c0'", "audio"), ("'c2'", "audio")]
    assert all("broken.mp3" in p.message for p in problems)
    assert _reads(facts, "probe") == {"broken.mp3": 1, "en.ogg": 1}


def test_validate_and_the_plan_lay_out_each_items_windows_once(tmp_path, monkeypatch):
    """The pauses are sought ahead, for every item of a file at once; the windows are then laid out once per item:
    by validate's plan lines, or by the run's plan, not also while their pauses were sought."""
    from manifests import windows
    from manifests.validate import plan_lines

    lesson = write_tone(tmp_path / "lesson.wav", 12.0)
    manifest = load_manifest(_campaign(tmp_path, 3, [str(lesson)], window_seconds=4.0))
    laid: list[int] = []

    def counted(num_frames: int, *args, **kwargs):
        laid.append(num_frames)
        return plan_windows(num_frames, *args, **kwargs)

    plan_windows = windows.plan_windows
    monkeypatch.setattr(windows, "plan_windows", counted)
    facts = MediaFacts()
    assert not check(manifest, facts=facts)[0]
    assert any("window 3:" in line for line in plan_lines(manifest, facts))
    assert len(laid) == 3
    laid.clear()
    assert all(len(p.windows) >= 3 for p in plan(manifest, None, facts))
    assert len(laid) == 3
    assert _reads(facts, "pauses") == {"lesson.wav": 1}  # the three items ask for the same span
