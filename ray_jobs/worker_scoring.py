"""A worker's quality scores, kept off the GPU's path.

Each clip is scored (``quality.process``, child processes at low CPU priority) right after its mp4 is
written, while the worker renders the next item. The row is recorded with the scores if they are ready and
without them if not (the last item of a shard, or a render faster than scoring: a draft); late scores are
then added to the results as revisions of their rows (``runstore.results.revise``), a batch at a time
(:class:`LateScores`). So the worker never waits for a score; ``timings["quality_wait"]`` records the (tiny)
time it spent looking.

``SCORERS`` processes score at once. One keeps up even with drafts on the distilled checkpoint (2.05 s per
clip on one H200), but then every row is written before its scores; two left 3 of 8 rows late
(BENCHMARKS.md, "A worker's steady state").

The scorer reads its own hard link of the mp4 (in its own folder), so uploading (moving) the video never
pulls it from under it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quality.process import ScoringPool
from quality.score_fields import unscored
from runstore.results import revise
from runstore.run_folder import RunFolder

if TYPE_CHECKING:  # torch: the scorer's module does not need it
    from ltxcore.render_result import RenderResult

log = logging.getLogger(__name__)
SCORERS = 2  # clips scored at once per worker
FLUSH_SCORES = 32  # late scores written as one revision file once this many have arrived
FLUSH_SECONDS = 60.0  # ... or once the oldest unwritten one has waited this long


@dataclass(frozen=True)
class PendingScore:
    future: Future  # the quality record
    linked: Future  # done once the scorer holds its own link to the mp4 (or could not make one)

    def wait_linked(self) -> None:
        wait([self.linked])

    def record(self) -> dict | None:
        """The record if scoring is done (a failure becomes a record saying so), else None."""
        if not self.future.done():
            return None
        error = self.future.exception()
        return unscored(f"scoring failed: {type(error).__name__}: {error}") if error else self.future.result()


class ClipScorer:
    def __init__(self, scorers: int = SCORERS, folder: Path | None = None):
        """``folder``: where its links to the clips live (a worker's scratch; default a temporary folder)."""
        self.pool = ScoringPool(scorers)
        self.linker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-link")  # never waits on scoring
        self.threads = self._threads()
        self.folder = folder if folder is not None else Path(tempfile.mkdtemp(prefix="ltx-batch-scoring-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def _threads(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.pool.size, thread_name_prefix="quality")

    def start(
        self, video: Path, reference: str | None, written: Future | None, boundaries: list[int] | None = None
    ) -> PendingScore:
        """Score ``video`` once ``written`` (the mux) is done; ``reference`` is the item's local image and
        ``boundaries`` the frames where windows 2, 3, ... of a long item begin. The image is linked at once: the
        worker's next shard may prune its fetched inputs before the scores run."""
        keep = self.folder / video.name
        if reference is not None and Path(reference).is_file():
            kept = self.folder / f"{video.stem}-reference{Path(reference).suffix}"
            try:
                _link(Path(reference), kept)
                reference = str(kept)
            except OSError as e:  # scored from where it is, while it is there
                log.warning("reference image %s not kept for scoring (%s)", reference, e)

        def link() -> None:
            if written is not None:
                written.result()
            _link(video, keep)

        def score() -> dict:
            try:
                linked.result()
                return self.pool.score(str(keep), reference, boundaries)
            finally:
                keep.unlink(missing_ok=True)
                if reference is not None and Path(reference).parent == self.folder:
                    Path(reference).unlink(missing_ok=True)

        linked = self.linker.submit(link)
        return PendingScore(self.threads.submit(score), linked)

    def settle(self) -> None:
        """Wait for every clip started so far, with its callbacks (joining the threads that run them)."""
        threads, self.threads = self.threads, self._threads()
        threads.shutdown(wait=True)

    def close(self) -> None:
        for pool in (self.linker, self.threads):
            pool.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


class LateScores:
    """Scores that arrived after their rows, written as revisions a batch at a time: a draft run's scores
    are mostly late, and one revision file per clip would leave thousands of tiny files for every reader.
    A worker that dies loses the unwritten ones; ``ltx-batch score --missing-only`` computes them again."""

    def __init__(self, write: Callable[[list[dict]], None]):
        self.write = write  # records revisions (the actor's: ``runstore.results.revise`` while it owns the run)
        self.lock = threading.Lock()
        self.arrived: list[dict] = []
        self.oldest = 0.0

    def add(self, row: dict, pending: PendingScore) -> None:
        """Keep ``pending``'s record for ``row`` once it arrives (on the scorer's thread)."""
        key = {"item_id": row["item_id"], "output_sha256": row["output_sha256"]}
        pending.future.add_done_callback(lambda _: self._arrive({**key, "quality": pending.record()}))

    def _arrive(self, revision: dict) -> None:
        with self.lock:
            if not self.arrived:
                self.oldest = time.monotonic()
            self.arrived.append(revision)
            due = len(self.arrived) >= FLUSH_SCORES or time.monotonic() - self.oldest >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the scores arrived so far as one revision (at a shard's end, at the run's, or when due)."""
        with self.lock:
            revisions, self.arrived = self.arrived, []
        if revisions:
            self.write(revisions)


def score_writer(run: RunFolder, session: str) -> Callable[[list[dict]], None]:
    """Late scores as a revision of their rows; not a method, so a finished actor never waits for its scores."""

    def write(revisions: list[dict]) -> None:
        try:  # the run may belong to a newer session by now, or the disk is gone
            if run.owned_by(session):
                revise(run.results_uri, revisions, f"{session}-{uuid.uuid4().hex[:8]}")
                return
            reason = "the run belongs to a newer driver session"
        except Exception as e:
            reason = f"{type(e).__name__}: {e}"
        ids = ", ".join(r["item_id"] for r in revisions)
        log.warning("late quality scores not recorded (%s) for %s; ltx-batch score --missing-only", reason, ids)

    return write


def written_then_scores(result: RenderResult, scoring: PendingScore | None) -> dict | None:
    """Wait for the mp4, then look (never wait) for its scores: their record, None while they still run (or
    with no ``scoring``). The seconds spent looking are ``result.timings["quality_wait"]``."""
    result.wait()
    if scoring is None:
        return None
    waiting = time.perf_counter()
    scoring.wait_linked()  # the scorer has its own link to the mp4 (right after the mux): upload may move it
    quality = scoring.record()
    result.timings["quality_wait"] = time.perf_counter() - waiting
    return quality


def _link(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, link)
