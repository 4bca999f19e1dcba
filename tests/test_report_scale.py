"""The report of a big run (``tools.synthetic_run``: 2,000 items, some 2,300 attempt rows written by the run
store's own writers) in headless Chromium: the page lays out a page of cards at a time, and its filters, sort and
promote picks work over every page."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import chromium, report_cards

from ray_jobs.report import PAGE, build_report
from tools.synthetic_run import build_synthetic_run

ITEMS = 2000


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("big") / "run"
    build_synthetic_run(run, ITEMS)
    return build_report(str(run))


def _shown(driver) -> list[str]:
    """Ids of the cards laid out and visible, in page order."""
    return driver.execute_script(
        "return [...document.querySelectorAll('article.card')].filter(c => c.offsetParent).map(c => c.dataset.id)"
    )


def _at(driver) -> str:
    return driver.find_element("css selector", "nav.pager .at").text


def test_a_big_run_is_laid_out_a_page_at_a_time_and_filtered_over_every_page(big, tmp_path):
    from selenium.webdriver.support.ui import Select

    page = big.read_text()
    cards = report_cards(page)
    ids = [c["id"] for c in cards]
    assert len(cards) == ITEMS and "<article" not in page  # the cards are data, laid out by the page's script
    german = [c["id"] for c in cards if "lang=de" in c["tokens"]]
    failed_german = [c["id"] for c in cards if "lang=de" in c["tokens"] and c["status"] == "failed"]
    confidence = {c["id"]: c["q"][1] for c in cards if c.get("q") and c["q"][1] is not None}
    weakest = sorted(confidence, key=lambda i: (confidence[i], ids.index(i)))
    with chromium(tmp_path) as driver:
        driver.get(big.as_uri())
        assert _shown(driver) == ids[:PAGE] and _at(driver) == f"page 1 of {ITEMS // PAGE}"
        assert driver.find_element("id", "shown").text == f"{ITEMS} of {ITEMS} shown"
        driver.find_elements("css selector", "nav.pager .next")[1].click()  # the pager below the cards
        assert _shown(driver) == ids[PAGE : 2 * PAGE] and _at(driver) == f"page 2 of {ITEMS // PAGE}"

        Select(driver.find_element("css selector", 'select[data-key="lang"]')).select_by_value("lang=de")
        assert _shown(driver) == german[:PAGE] and _at(driver) == f"page 1 of {math.ceil(len(german) / PAGE)}"
        driver.find_element("css selector", "nav.pager .next").click()
        assert _shown(driver) == german[PAGE : 2 * PAGE]
        Select(driver.find_element("id", "status-filter")).select_by_value("failed")
        assert _shown(driver) == failed_german and len(failed_german) > 5  # back to the first page of what is kept
        assert not driver.find_element("css selector", "nav.pager").is_displayed()  # one page
        error = driver.find_element("css selector", f"#item-{failed_german[0]} pre.error").get_attribute("textContent")
        assert error == next(c["error"] for c in cards if c["id"] == failed_german[0])

        Select(driver.find_element("id", "status-filter")).select_by_value("all")
        Select(driver.find_element("css selector", 'select[data-key="lang"]')).select_by_value("")
        Select(driver.find_element("id", "sort-by")).select_by_value("lipsync_confidence")
        assert _shown(driver) == weakest[:PAGE]  # the weakest of every page first
        Select(driver.find_element("id", "score-filter")).select_by_value("lipsync_confidence")
        driver.find_element("id", "score-value").send_keys("0.3")
        below = [i for i in weakest if confidence[i] < 0.3]
        assert driver.find_element("id", "shown").text == f"{len(below)} of {ITEMS} shown"
        assert _shown(driver) == below[:PAGE] and len(below) > PAGE

        driver.find_element("id", "score-value").clear()
        Select(driver.find_element("css selector", 'select[data-key="lang"]')).select_by_value("lang=de")
        driver.find_element("id", "promote-shown").click()  # the drafts the filters keep, on every page
        drafts = [c["id"] for c in cards if c.get("promotable") and c["id"] in german]
        assert driver.find_element("id", "promote-count").text == str(len(drafts))
        assert driver.find_element("id", "promote-cmd").text.endswith(" --only " + " ".join(drafts))
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
