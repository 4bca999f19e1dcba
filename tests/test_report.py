"""The HTML run report, built from a real draft run (4 items rendered with --draft, one with corrupt audio) and
opened in headless Chromium, where drafts are picked for promotion and the command it writes is run; and, on
the same run, the quality scores: the results column, ``ltx-batch score`` and ``status``, the report's score
sort and filter, and ``ltx-batch retry-weak`` with its best mark and the candidates side by side.

Random weights draw no face, so rendered clips get null scores that say why; for real scores, synthetic
talking-face clips (conftest ``talking``) replace some rendered videos, as the README's guide does."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LESSON, LONG_BOUNDARIES, QUICK_FLAGS, chromium, report_cards, report_data

from ray_jobs.cli import main as cli_main
from ray_jobs.render import main as render_main
from ray_jobs.report import Card, build_report, render_page
from ray_jobs.report import main as report_main
from ray_jobs.summary import Failure, RunSummary
from runstore.results import read_results
from runstore.retry_candidates import candidate_seed
from runstore.run_folder import RunFolder

FAST = QUICK_FLAGS  # clip lengths as written
IDS = [f"clip-{i}" for i in range(4)]
BROKEN = "clip-2"
ODD_TAG = 'a<i> & "q"'  # must come out escaped, never as markup


def _manifest(folder: Path, broken: str) -> Path:
    """Four one-second items in three languages; ``broken`` gets an mp3 whose frames are garbage."""
    items = []
    for n, (item_id, lang) in enumerate(zip(IDS, ("en", "de", "es", "de"), strict=True)):
        audio = LESSON / {"en": "en.ogg", "de": "de.mp3", "es": "es.m4a"}[lang]
        if item_id == broken:
            good = (LESSON / "de.mp3").read_bytes()
            audio = folder / "broken.mp3"
            audio.write_bytes(good[:1000] + bytes((7 * k + 3) % 256 for k in range(len(good) - 1000)))
        tags = {"lang": lang, "note": ODD_TAG if n == 0 else "plain"}
        items.append({"id": item_id, "audio": str(audio), "tags": tags})
    body = {
        "run_seed": 5,
        "defaults": {"prompt": "A presenter", "audio_max_duration": 1.0, "image": str(LESSON / "presenter.png")},
        "items": items,
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def run(local_ray, tiny_bundle, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report-run")
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    out = folder / "run"
    args = [str(_manifest(folder, BROKEN)), "--out", str(out), "--bundle", bundle, "--shard-size", "2"]
    args += ["--actors", "1", *FAST]  # one worker process to start: the shards still run one after another
    args.append("--draft")
    assert render_main(args) == 1  # one item failed, the others rendered
    return out


def _cards(page: str) -> dict[str, dict]:
    """item id -> its card, as the page's data holds it."""
    return {card["id"]: card for card in report_cards(page)}


def test_report_files_posters_and_cards(run, capsys):
    assert report_main([str(run)]) == 0
    index = run / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(index) and index.is_file()
    page = index.read_text()
    cards = _cards(page)
    ok = [i for i in IDS if i != BROKEN]
    assert {i: c["status"] for i, c in cards.items()} == {**{i: "ok" for i in ok}, BROKEN: "failed"}
    for item_id in ok:
        poster = run / "report" / "posters" / f"{item_id}.jpg"
        assert poster.stat().st_size > 500 and poster.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
        assert cards[item_id]["poster"] == [192, 128] and (index.parent / f"../videos/{item_id}.mp4").is_file()
    assert not (run / "report" / "posters" / f"{BROKEN}.jpg").exists() and "poster" not in cards[BROKEN]
    failed = cards[BROKEN]
    assert "RenderInputError" in failed["error"] and "could not be decoded" in failed["error"]
    assert report_data(page)["runCommand"] == f"python -m ray_jobs.render --resume {run}"
    seed = read_results(str(run / "results")).filter(pc.equal(pc.field("item_id"), BROKEN)).column("seed")[0]
    assert failed["seed"] == str(seed.as_py()) and ("seed", str(seed.as_py())) in failed["facts"]
    assert "a&lt;i&gt; &amp; &quot;q&quot;" in page and ODD_TAG not in page  # escaped in the filters and the data
    assert cards["clip-0"]["tags"] == [["lang", "en"], ["note", ODD_TAG]]
    assert "data:image" not in page and "http://" not in page and "https://" not in page
    assert re.search(r'<div class="fig ok" data-figure="ok"><b>3</b>', page)
    assert [i for i, c in cards.items() if c.get("promotable")] == ok
    assert cards["clip-0"]["guidance"].startswith("draft (distilled), no guidance · steps 8")


def test_draft_rows_record_what_the_drafts_used(run):
    rows = read_results(str(run / "results")).to_pylist()
    used = {(r["pipeline"], r["num_inference_steps"], r["video_cfg_scale"], r["transformer"]) for r in rows}
    assert used == {("distilled", 8, None, "dev")}
    planned = RunFolder(str(run)).plan()  # as written: they apply when the drafts are promoted
    assert all(p.item.num_inference_steps == 2 and p.item.video_cfg_scale == 3.0 for p in planned)


def test_items_without_a_result_are_pending(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for part in (copy / "results").glob("*.parquet"):  # forget clip-3's result, as if it never ran
        table = pq.read_table(part)
        pq.write_table(table.filter(pc.not_equal(table.column("item_id"), "clip-3")), part)
    page = build_report(str(copy)).read_text()
    pending = _cards(page)["clip-3"]
    assert pending["status"] == "pending" and "poster" not in pending and "timings" not in pending
    assert '<option value="pending">pending (1)</option>' in page


def test_report_in_headless_chromium(run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    index = build_report(str(run))
    with chromium(tmp_path) as driver:
        driver.get(index.as_uri())
        wait = WebDriverWait(driver, 10)
        wait.until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"
            )
        )
        cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
        assert len(cards) == len(IDS) and all(c.is_displayed() for c in cards)
        sizes = driver.execute_script("return [...document.images].map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[192, 128]] * 3  # every poster decoded
        ok = [i for i in IDS if i != BROKEN]
        links = "return [...document.querySelectorAll('img, a.video')].map(e => e.getAttribute(e.src ? 'src' : 'href'))"
        assert driver.execute_script(links) == [p for i in ok for p in (f"posters/{i}.jpg", f"../videos/{i}.mp4")]
        failed = driver.find_element(By.ID, f"item-{BROKEN}").text
        assert "RenderInputError" in failed and f"python -m ray_jobs.render --resume {run}" in failed
        assert not any(pager.is_displayed() for pager in driver.find_elements(By.CSS_SELECTOR, "nav.pager"))  # 1 page
        assert driver.find_element(By.ID, "shown").text == "4 of 4 shown"
        note = driver.find_element(By.CSS_SELECTOR, "#item-clip-0 .tags").text
        assert ODD_TAG in note  # shown as text, not parsed as markup
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

        Select(driver.find_element(By.ID, "status-filter")).select_by_value("failed")
        visible = [c.get_attribute("id") for c in cards if c.is_displayed()]
        assert visible == [f"item-{BROKEN}"]
        button = driver.find_element(By.CSS_SELECTOR, f"#item-{BROKEN} button.copy")
        button.click()
        wait.until(lambda d: button.text in ("copied", "press Ctrl+C"))

        Select(driver.find_element(By.ID, "status-filter")).select_by_value("all")
        Select(driver.find_element(By.CSS_SELECTOR, 'select[data-key="lang"]')).select_by_visible_text("de (2)")
        assert [c.get_attribute("id") for c in cards if c.is_displayed()] == ["item-clip-1", "item-clip-3"]
        assert driver.find_element(By.ID, "shown").text == "2 of 4 shown"

        command = driver.find_element(By.ID, "promote-cmd")
        copy = driver.find_element(By.CSS_SELECTOR, "#promote button.copy")
        base = f"ltx-batch promote {run} --out {run}-final"
        picks = {c.get_attribute("value"): c for c in driver.find_elements(By.CSS_SELECTOR, "input.promote-pick")}
        assert sorted(picks) == ["clip-0", "clip-1", "clip-3"]  # ok drafts only
        assert command.text == "pick drafts to promote" and not copy.is_enabled()
        driver.find_element(By.ID, "promote-shown").click()  # the drafts the filter shows
        assert command.text == f"{base} --only clip-1 clip-3"
        Select(driver.find_element(By.CSS_SELECTOR, 'select[data-key="lang"]')).select_by_value("")
        picks["clip-0"].click()
        assert driver.find_element(By.ID, "promote-count").text == "3"
        assert command.text == f"{base} --exclude clip-2"  # the shorter of the two forms
        copy.click()
        wait.until(lambda d: copy.text in ("copied", "press Ctrl+C"))
        assert cli_main(shlex.split(command.text)[1:]) == 0
        promoted = RunFolder(f"{run}-final").plan()
        assert [p.id for p in promoted] == ["clip-0", "clip-1", "clip-3"]
        assert {p.item.pipeline for p in promoted} == {"two-stage"}
        driver.find_element(By.ID, "promote-none").click()
        assert command.text == "pick drafts to promote" and not copy.is_enabled()

        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors


def test_hostile_text_is_escaped_everywhere_it_appears(tmp_path):
    """Ids, tags, errors and run metadata come from manifests and exceptions: never markup on the page."""
    from selenium.webdriver.common.by import By

    evil = '<script>alert("x")</script>'
    values = {"prompt": evil, "seed": 1, "error_type": evil, "error_message": f"</pre>{evil}", "timings": [(evil, 1.0)]}
    cards = [Card(evil, "failed", values, {evil: evil}), Card("ok-1", "ok", {"seed": 2}, {}, (192, 128))]
    summary = RunSummary(2, 1, (Failure(evil, evil, evil),), (), 1.0, 1.0, None, None)
    page = render_page({"run_id": evil, "code_version": evil}, cards, summary, f"python -m x --resume '{evil}'")
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="report-data">', "<script>"]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "</pre><script" not in page
    assert "<" not in page.split('id="report-data">')[1].split("</script>")[0]  # no tag can end the data early
    assert report_cards(page)[0]["error"] == f"{evil}: </pre>{evil}"
    index = tmp_path / "index.html"
    index.write_text(page)
    with chromium(tmp_path) as driver:
        driver.get(index.as_uri())  # an alert would stop the page here
        card = driver.find_element(By.CSS_SELECTOR, "article.card")
        assert card.get_attribute("id") == "item-%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E"  # URL-quoted
        assert card.find_element(By.CSS_SELECTOR, "pre.error").text == f"{evil}: </pre>{evil}"
        assert card.find_element(By.CSS_SELECTOR, ".tags").text == f"{evil}: {evil}"
        assert driver.execute_script("return document.scripts.length") == 2  # the data and the report's script


def _latest(run: Path) -> dict[str, dict]:
    rows = read_results(str(run / "results")).sort_by([("finished_at", "ascending")]).to_pylist()
    return {r["item_id"]: r for r in rows}


@pytest.fixture(scope="module")
def scored(run, talking, tmp_path_factory) -> Path:
    """A copy of the run whose clip-0 is a talking face in sync, clip-1 one with an unrelated sound and clip-3
    one with the sound 4 frames late, scored with ``ltx-batch score``."""
    copy = tmp_path_factory.mktemp("scored") / "run"
    shutil.copytree(run, copy)
    for item, clip in (("clip-0", "aligned"), ("clip-1", "unrelated"), ("clip-3", "late4")):
        shutil.copy(talking[clip], copy / "videos" / f"{item}.mp4")
    rows_before = len(read_results(str(copy / "results")))
    assert cli_main(["score", str(copy), "--jobs", "2"]) == 0
    assert len(read_results(str(copy / "results"))) == rows_before  # a revision, never a new attempt
    return copy


def test_rendered_clips_without_a_face_get_null_scores_that_say_why(run):
    rows = _latest(run)
    assert rows[BROKEN]["quality"] is None
    for item in (i for i in IDS if i != BROKEN):
        quality = rows[item]["quality"]
        assert quality["face_found_fraction"] == 0.0 and quality["lipsync_confidence"] is None
        assert quality["reason"].startswith("no face found") and quality["seconds"] > 0
        assert dict(rows[item]["timings"])["quality_wait"] < 1  # the worker did not wait for the scorer


def test_status_lists_the_weakest_clips(scored, capsys):
    quality = {item: row["quality"] for item, row in _latest(scored).items()}
    assert quality["clip-0"]["lipsync_confidence"] > quality["clip-1"]["lipsync_confidence"] + 0.3
    assert abs(quality["clip-3"]["lipsync_offset_frames"] - 4) <= 1
    assert cli_main(["status", str(scored), "--weakest", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "quality: 3 of 3 ok clips scored" in lines
    weakest = {line.split()[1]: line.split(": ")[1].split()[0] for line in lines if line.startswith("  weakest ")}
    assert weakest["lipsync_confidence"] == "clip-1" and weakest["lipsync_offset_frames"] in ("clip-1", "clip-3")


def _shown(driver) -> list[str]:
    """Item ids of the visible cards, in page order."""
    cards = driver.find_elements("css selector", "article.card")
    return [c.get_attribute("id").removeprefix("item-") for c in cards if c.is_displayed()]


def test_report_scores_sort_and_filter_in_chromium(scored, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    index = build_report(str(scored))
    with chromium(tmp_path) as driver:
        driver.get(index.as_uri())
        cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
        confidence = driver.find_element(By.CSS_SELECTOR, "#item-clip-1 .q-lipsync_confidence").text
        assert float(confidence) == pytest.approx(_latest(scored)["clip-1"]["quality"]["lipsync_confidence"], abs=1e-3)

        Select(driver.find_element(By.ID, "sort-by")).select_by_value("lipsync_confidence")
        assert _shown(driver)[0] == "clip-1" and _shown(driver)[-1] == BROKEN  # weakest first, the unscored last
        Select(driver.find_element(By.ID, "sort-by")).select_by_value("")
        assert _shown(driver) == IDS  # plan order again

        Select(driver.find_element(By.ID, "score-filter")).select_by_value("lipsync_confidence")
        driver.find_element(By.ID, "score-value").send_keys("0.7")
        assert _shown(driver) == ["clip-1"] and driver.find_element(By.ID, "shown").text == "1 of 4 shown"
        Select(driver.find_element(By.ID, "score-op")).select_by_value("gt")
        assert _shown(driver) == ["clip-0", "clip-3"]  # the failed clip has no score: never matches
        assert len(cards) == len(IDS)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors


def test_retry_weak_renders_candidates_and_marks_the_best(scored, talking, tiny_bundle, tmp_path, capsys):
    weak = _latest(scored)["clip-1"]
    new = tmp_path / "retry"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    where = ["--where", "lipsync_confidence < 0.7", "--seeds", "2", "--set", "video_modality_scale=4"]
    capsys.readouterr()
    options = ["--bundle", bundle, "--actors", "1", *FAST]
    assert cli_main(["retry-weak", str(scored), "--out", str(new), *where, *options]) == 0
    printed = capsys.readouterr().out
    assert "2 candidates for the items of" in printed and "none of 2 candidates marked" in printed  # no faces
    rows = _latest(new)
    assert sorted(rows) == ["clip-1-retry1", "clip-1-retry2"]
    planned = {p.id: p.item for p in RunFolder(str(new)).plan()}  # drafts: guidance applies once promoted
    for n in (1, 2):
        row = rows[f"clip-1-retry{n}"]
        assert (row["retry_of"], row["candidate"]) == ("clip-1", n)
        assert planned[f"clip-1-retry{n}"].video_modality_scale == 4.0
        assert row["seed"] == candidate_seed("clip-1", weak["seed"], n) != weak["seed"]
    info = json.loads((new / "retry.json").read_text())
    assert info["by"] == "lipsync_confidence" and info["originals"]["clip-1"]["lipsync_confidence"] is not None

    shutil.copy(talking["early4"], new / "videos" / "clip-1-retry2.mp4")  # a candidate whose lips follow the sound
    assert cli_main(["score", str(new)]) == 0
    assert "clip-1: clip-1-retry2 (lipsync_confidence" in capsys.readouterr().out
    assert {item: row["best"] for item, row in _latest(new).items()} == {"clip-1-retry1": False, "clip-1-retry2": True}

    page = build_report(str(new)).read_text()
    [group] = [u for u in report_data(page)["units"] if isinstance(u, dict)]
    cards = report_cards(page)
    assert (group["origin"], [cards[i]["id"] for i in group["cards"]]) == ("clip-1", ["clip-1-retry1", "clip-1-retry2"])
    assert group["note"].startswith("original lipsync_confidence ")
    assert [c["id"] for c in cards if c.get("best")] == ["clip-1-retry2"]
    assert cli_main(["retry-weak", str(scored), "--out", str(new), *where]) == 2  # never over an existing run


@pytest.fixture(scope="module")
def windowed(scored, long_clips, tmp_path_factory) -> Path:
    """A copy of the scored run whose clip-0 is a long clip of three windows with a jump at frame 80 and clip-3
    one with clean joins, scored window by window (as a worker scores a long item: its boundaries passed in)."""
    from quality.process import ScoringProcess
    from runstore.results import revise

    copy = tmp_path_factory.mktemp("windowed") / "run"
    shutil.copytree(scored, copy)
    scorer = ScoringProcess()
    revisions = []
    try:
        for item, clip in (("clip-0", "jump"), ("clip-3", "clean")):
            video = copy / "videos" / f"{item}.mp4"
            shutil.copy(long_clips[clip], video)
            record = scorer.score(str(video), None, LONG_BOUNDARIES)
            assert record["reason"] is None and len(record["windows"]) == 3, record
            revisions.append(
                {"item_id": item, "output_sha256": _latest(copy)[item]["output_sha256"], "quality": record}
            )
    finally:
        scorer.close()
    revise(str(copy / "results"), revisions, "windows")
    return copy


def test_long_items_windows_in_the_quality_column_status_and_where(windowed, tmp_path, capsys):
    from ray_jobs.retry_weak import Retry, plan_retry
    from runstore.latest import matching_rows, where_filter

    quality = {item: row["quality"] for item, row in _latest(windowed).items()}
    assert quality["clip-0"]["worst_seam"] > 4 and quality["clip-0"]["worst_seam_frame"] == 80
    assert quality["clip-3"]["worst_seam"] < 2 and quality["clip-1"]["windows"] is None  # a one-window clip
    assert [w["start"] for w in quality["clip-0"]["windows"]] == [0, *LONG_BOUNDARIES]
    assert cli_main(["status", str(windowed), "--weakest", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seams = next(line for line in lines if line.startswith("  weakest seams"))
    assert seams.split(": ", 1)[1].startswith("clip-0 at frame 80 "), seams
    assert next(line for line in lines if "weakest worst_seam " in line).split(": ")[1].startswith("clip-0 ")
    keep = where_filter("worst_seam > 2")
    assert [row["item_id"] for row in matching_rows(RunFolder(str(windowed)), keep)] == ["clip-0"]
    retry = Retry(str(windowed), "worst_seam > 2", seeds=2)  # retry-weak --where "worst_seam > 2"
    assert plan_retry(retry, RunFolder(retry.run), str(tmp_path / "retry"), {})[1] == 2  # two candidates of clip-0
    info = json.loads((tmp_path / "retry" / "retry.json").read_text())
    assert info["by"] == "worst_seam" and list(info["originals"]) == ["clip-0"]


def test_report_timeline_of_a_long_item_in_chromium(windowed, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    index = build_report(str(windowed))
    with chromium(tmp_path) as driver:
        driver.get(index.as_uri())
        timeline = driver.find_element(By.CSS_SELECTOR, "#item-clip-0 .timeline")
        windows = timeline.find_elements(By.CSS_SELECTOR, ".window")
        assert timeline.is_displayed() and len(windows) == 3 and all(w.is_displayed() for w in windows)
        assert "sync" in windows[1].text and "colour" in windows[1].text
        widths = [w.size["width"] for w in windows]
        assert max(widths) - min(widths) <= 2 and sum(widths) <= timeline.size["width"] + 2  # equal, side by side
        seams = timeline.find_elements(By.CSS_SELECTOR, ".seam")
        assert [s.get_attribute("data-frame") for s in seams] == ["40", "80"]
        weak = timeline.find_elements(By.CSS_SELECTOR, ".seam.weak")
        assert [s.get_attribute("data-frame") for s in weak] == ["80"] and float(weak[0].text) > 4
        assert weak[0].value_of_css_property("background-color") == "rgba(217, 45, 32, 1)"  # drawn red
        left = seams[1].location["x"] + seams[1].size["width"] / 2 - timeline.location["x"]
        assert abs(left / timeline.size["width"] - 80 / 120) < 0.02  # at its frame on the bar
        clean = driver.find_elements(By.CSS_SELECTOR, "#item-clip-3 .timeline .seam.weak")
        assert clean == [] and driver.find_elements(By.CSS_SELECTOR, "#item-clip-1 .timeline") == []
        Select(driver.find_element(By.ID, "sort-by")).select_by_value("worst_seam")
        assert _shown(driver)[:2] == ["clip-0", "clip-3"]
        screenshot = tmp_path / "timeline.png"
        assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
