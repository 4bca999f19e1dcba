"""The one run summary: counts, grouped failures, clips per hour over rendering time, and ETA, read back
from a real results table written the way workers write it."""

from __future__ import annotations

import io
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from conftest import LESSON

from manifests.load import load_manifest
from manifests.problems import without_particulars
from ray_jobs.messages import ItemDone, WindowDone
from ray_jobs.progress import Progress
from ray_jobs.summary import GROUP_MESSAGE_CHARS, rendering_seconds, summarize
from runstore.plan import plan
from runstore.results import ShardRecorder, read_results, result_row

T0 = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def planned():
    return plan(load_manifest(LESSON / "lesson.yaml"))  # lesson03-en, lesson03-de, lesson03-es


def _record(results: str, planned, attempts: list[tuple]) -> None:
    """``attempts``: (item index, shard attempt, status, start s, end s, error message)."""
    for index, attempt, status, start, end, message in attempts:
        recorder = ShardRecorder(results, "run", "session", index, attempt)
        error = {"error_type": "RenderInputError", "error_message": message} if status == "failed" else {}
        recorder.add(result_row(planned[index], status=status, started_at=_at(start), finished_at=_at(end), **error))


def _ids(planned) -> list[str]:
    return [p.id for p in planned]


def _spans(*seconds: tuple[float, float]) -> pa.Table:
    starts, ends = zip(*seconds, strict=True) if seconds else ((), ())
    column = pa.timestamp("us", tz="UTC")
    return pa.table({"started_at": pa.array(map(_at, starts), column), "finished_at": pa.array(map(_at, ends), column)})


def test_union_of_intervals_counts_overlap_once_and_gaps_not_at_all():
    assert rendering_seconds(_spans()) == 0
    assert rendering_seconds(_spans((0, 10), (5, 15), (6, 7))) == 15
    assert rendering_seconds(_spans((20, 30), (0, 10))) == 20
    assert rendering_seconds(_spans((0, 0), (0, 4))) == 4
    assert rendering_seconds(_spans((0, 10), (2, 3), (4, 12), (20, 21))) == 13


def test_counts_failures_rate_and_eta(planned, tmp_path):
    results = str(tmp_path / "results")
    _record(
        results,
        planned,
        [
            (0, 0, "failed", 0, 10, "audio: could not be decoded"),  # retried below: the latest attempt wins
            (0, 1, "ok", 20, 30, None),
            (1, 0, "failed", 25, 40, "audio: could not be decoded\nsecond line"),
        ],
    )
    summary = summarize(_ids(planned), read_results(results))
    assert summary.total == 3 and summary.counts == {"ok": 1, "failed": 1, "pending": 1}
    assert summary.pending == ("lesson03-es",)
    assert [(f.item_id, f.message) for f in summary.failures] == [
        ("lesson03-de", "audio: could not be decoded\nsecond line")
    ]
    assert summary.rendering_seconds == 30  # [0, 10] and [20, 40]
    assert summary.worker_seconds == 25  # latest attempts only: 10 s and 15 s
    assert summary.clips_per_hour == pytest.approx(120.0)
    assert summary.eta_hours == pytest.approx(1 / 120)
    assert (summary.first_start, summary.last_end) == (_at(0), _at(40))
    assert (
        summary.throughput_line()
        == "throughput: 120.0 clips/h over 0m30s of rendering between 2026-03-12 09:00 and 09:00 UTC"
    )


def test_idle_time_between_a_run_and_its_resume_does_not_count(planned, tmp_path):
    results = str(tmp_path / "results")
    day = 24 * 3600
    _record(
        results,
        planned,
        [(0, 0, "ok", 0, 60, None), (1, 0, "ok", day, day + 60, None), (2, 0, "ok", day + 30, day + 120, None)],
    )
    summary = summarize(_ids(planned), read_results(results))
    assert summary.counts == {"ok": 3, "failed": 0, "pending": 0}
    assert summary.rendering_seconds == 180 and summary.clips_per_hour == pytest.approx(60.0)
    assert summary.eta_hours == 0


def test_failures_group_by_type_and_first_line_most_common_first(planned, tmp_path):
    results = str(tmp_path / "results")
    _record(
        results,
        planned,
        [
            (0, 0, "failed", 0, 1, "image: missing"),
            (1, 0, "failed", 0, 1, "audio: empty\nA"),
            (2, 0, "failed", 0, 1, "audio: empty\nB"),
        ],
    )
    summary = summarize(_ids(planned), read_results(results))
    groups = [(g.error_type, g.message, g.item_ids) for g in summary.failure_groups()]
    assert groups == [
        ("RenderInputError", "audio: empty", ("lesson03-de", "lesson03-es")),
        ("RenderInputError", "image: missing", ("lesson03-en",)),
    ]
    assert summary.clips_per_hour == 0 and summary.throughput_line() is None


def test_a_run_without_results_is_all_pending(planned, tmp_path):
    summary = summarize(_ids(planned), read_results(str(tmp_path / "results")))
    assert summary.counts == {"ok": 0, "failed": 0, "pending": 3}
    assert summary.clips_per_hour is None and summary.eta_hours is None and summary.first_start is None


def test_invalid_items_count_and_come_first_and_a_fixed_items_old_row_is_not_an_attempt(planned, tmp_path):
    from manifests.load import Entry
    from runstore.invalid import SetAside, invalid_row
    from runstore.results import write_invalid_rows

    results = str(tmp_path / "results")
    _record(results, planned, [(0, 0, "failed", 0, 1, "audio: empty"), (1, 0, "failed", 0, 1, "audio: empty")])
    broken = SetAside("<item 5, line 20>", Entry(4, "line 20", {"audio": "x.wav", "height": "tall"}))
    fixed = SetAside("lesson03-es", Entry(2, "line 14", {"id": "lesson03-es"}))  # in the plan by now
    rows = [invalid_row(broken, {"prompt": "p"}, "item #5 (line 20), field 'id': is required.\nsecond")]
    rows.append(invalid_row(fixed, {}, "item 'lesson03-es' (line 14), field 'audio': cannot open it."))
    write_invalid_rows(results, "run", "s1", rows)
    [row] = [r for r in read_results(results).to_pylist() if r["item_id"] == "<item 5, line 20>"]
    assert (row["audio"], row["prompt"], row["height"], row["status"]) == ("x.wav", "p", None, "failed")

    summary = summarize(_ids(planned), read_results(results), invalid_ids=("<item 5, line 20>",))
    assert summary.total == 4 and summary.counts == {"ok": 0, "failed": 3, "pending": 1} and summary.invalid == 1
    assert [f.item_id for f in summary.failures] == ["<item 5, line 20>", "lesson03-en", "lesson03-de"]
    assert summary.pending == ("lesson03-es",)  # its InvalidInput row predates its joining the plan
    groups = [(g.error_type, g.message, g.item_ids) for g in summary.failure_groups()]
    assert groups == [
        ("InvalidInput", "item #5 (line 20), field 'id': is required.", ("<item 5, line 20>",)),
        ("RenderInputError", "audio: empty", ("lesson03-en", "lesson03-de")),
    ]


def test_status_of_a_big_run_counts_every_item_in_a_few_lines(tmp_path):
    """A synthetic run of 2,000 items (``tools.synthetic_run``) whose failure messages name their files: status
    groups them by kind (a message of each kind, the paths and numbers aside), a few lines however many files."""
    from ray_jobs.cli import status_lines
    from tools.synthetic_run import build_synthetic_run

    build_synthetic_run(tmp_path / "run", 2000)
    latest: dict[str, dict] = {}
    for row in read_results(str(tmp_path / "run" / "results")).to_pylist():  # every attempt, the latest kept
        if row["item_id"] not in latest or (row["finished_at"], row["attempt"]) > (
            latest[row["item_id"]]["finished_at"],
            latest[row["item_id"]]["attempt"],
        ):
            latest[row["item_id"]] = row
    failed = [r for r in latest.values() if r["status"] == "failed"]
    messages = Counter((r["error_type"], r["error_message"].splitlines()[0]) for r in failed)
    kinds = Counter((kind, without_particulars(message[:GROUP_MESSAGE_CHARS])) for kind, message in messages.elements())
    ok = sum(r["status"] == "ok" for r in latest.values())

    lines = status_lines(str(tmp_path / "run"))
    assert lines[0].endswith(f"2000 items, {ok} ok, {len(failed)} failed, {2000 - len(latest)} not rendered yet")
    listed = [line for line in lines if " x " in line and not line.startswith("  and ")]
    assert len(messages) > 20 and 1 < len(kinds) <= 10 and len(lines) < 40  # files named: many messages, few kinds
    assert [int(line.split(" x ")[0]) for line in listed] == sorted(kinds.values(), reverse=True)
    assert sum(int(line.split(" x ")[0]) for line in listed) == len(failed)
    assert any(line.startswith("ETA at that rate: ") for line in lines)
    assert any(line.startswith("quality: ") for line in lines)


def test_the_progress_line_counts_the_windows_of_long_items_and_its_eta_follows_them():
    """A lesson of 3 windows moves the line at each window, not once at its end; an item of one window is one."""
    stream = io.StringIO()
    progress = Progress(total=2, stream=stream, windows={"lesson": 3}, started=time.monotonic() - 30)
    assert "windows 0/4" in progress.line() and "ETA ?" in progress.line()
    progress.window(WindowDone("lesson", 0, "h", 10.0))
    progress.window(WindowDone("lesson", 1, "h", 10.0))
    line = progress.line()
    assert "0/2 ok 0 failed 0 | windows 2/4" in line and "ETA 0m30s" in line  # 2 windows in 30 s: 2 left
    progress.item(ItemDone("lesson", "ok", "h", 1, 60.0))  # its last window was rendered before a resume
    progress.item(ItemDone("clip", "failed", "h", 1, 1.0))
    assert "2/2 ok 1 failed 1 | windows 4/4" in progress.line()
