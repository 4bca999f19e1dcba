"""``ltx-batch score``: (re)compute the quality scores of a run's clips, or of one mp4.

A run's new scores are revisions (``runstore.results.revise``): the attempts' rows stay as recorded and
every reader (resume, status, report, ``--where``) sees the latest scores. Clips in object storage are
fetched to a temporary folder first. Several clips are scored at once with ``jobs`` child processes.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quality import process
from quality.score_clip import EXTRA_MISSING
from quality.score_fields import FIELDS
from ray_jobs.quality_view import quality_lines
from runstore.best_candidates import mark_best
from runstore.latest import latest_by_item, latest_table
from runstore.results import read_results, revise
from runstore.run_folder import RunFolder
from storage.fs import download, is_uri


class QualityExtraMissing(RuntimeError):
    pass


def _require_extra() -> None:
    if not process.available():
        raise QualityExtraMissing(EXTRA_MISSING.replace(", so nothing was scored", "; nothing was changed"))


def _local(uri: str | None, scratch: Path) -> str | None:
    if uri is None or not is_uri(uri):
        return uri
    return str(download(uri, scratch / uuid.uuid4().hex / uri.rsplit("/", 1)[-1]))


def score_clip(video: str, reference: str | None = None) -> list[str]:
    """One mp4's record, one field a line."""
    _require_extra()
    scorer = process.ScoringProcess()
    try:
        record = scorer.score(video, reference)
    finally:
        scorer.close()
    return [f"{name}: {record[name]}" for name in FIELDS]


def score_run(run_uri: str, jobs: int = 1, missing_only: bool = False) -> list[str]:
    """Score every ok clip of the run (``missing_only``: those without scores); return the lines to print."""
    _require_extra()
    run = RunFolder(run_uri)
    planned = run.plan()
    latest = latest_by_item(planned, read_results(run.results_uri))
    todo = [latest[p.id] for p in planned if p.id in latest and latest[p.id]["status"] == "ok"]
    if missing_only:
        todo = [row for row in todo if row["quality"] is None]
    images = {p.id: p.item.first_image for p in planned}
    scorers = process.ScoringPool(jobs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ltx-batch-score-") as folder:

        def score(row: dict) -> dict:
            item = row["item_id"]  # the run folder's copy, wherever the folder is now (as the report reads it)
            video, image = _local(run.video_uri(item), Path(folder)), _local(images[item], Path(folder))
            assert video is not None, "a video's URI gives a local copy"
            return {"item_id": item, "output_sha256": row["output_sha256"], "quality": scorers.score(video, image)}

        with ThreadPoolExecutor(max_workers=scorers.size) as pool:
            revisions = list(pool.map(score, todo))
    scorers.close()
    if revisions:
        revise(run.results_uri, revisions, f"score-{uuid.uuid4().hex[:8]}")
    cpu = sum(r["quality"]["seconds"] or 0 for r in revisions)
    lines = [
        f"scored {len(revisions)} clips in {time.perf_counter() - started:.1f} s "
        f"({cpu / max(1, len(revisions)):.2f} CPU s per clip, {scorers.size} at a time)"
    ]
    lines += mark_best(run)
    return lines + quality_lines(latest_table([p.id for p in planned], read_results(run.results_uri)))
