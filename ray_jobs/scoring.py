"""A worker's quality scores, kept off the GPU's path.

Each clip is scored (``quality.process``, a child process at low CPU priority) right after its mp4 is
written, while the worker renders the next item. The row is recorded with the scores if they are ready and
without them if not (the last item of a shard, or a slow scorer); late scores are then added to the results
as a revision of that row (``manifests.results.revise``) as soon as they arrive. So the worker never waits
for a score; ``timings["quality_wait"]`` records the (tiny) time it spent looking.

The scorer reads its own hard link of the mp4 (in its own folder), so uploading (moving) the video never
pulls it from under it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from quality.process import ScoringProcess
from quality.scores import unscored


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
    def __init__(self):
        self.process = ScoringProcess()
        self.linker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-link")  # never waits on scoring
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality")
        self.folder = Path(tempfile.mkdtemp(prefix="ltx-batch-scoring-"))
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def start(self, video: Path, reference: str | None, written: Future | None) -> PendingScore:
        """Score ``video`` once ``written`` (the mux) is done; ``reference`` is the item's local image."""
        keep = self.folder / video.name

        def link() -> None:
            if written is not None:
                written.result()
            _link(video, keep)

        def score() -> dict:
            try:
                linked.result()
                return self.process.score(str(keep), reference)
            finally:
                keep.unlink(missing_ok=True)

        linked = self.linker.submit(link)
        return PendingScore(self.thread.submit(score), linked)

    def settle(self) -> None:
        """Wait for every clip started so far: the thread runs them in order, each with its callbacks."""
        self.thread.submit(lambda: None).result()

    def close(self) -> None:
        for pool in (self.linker, self.thread):
            pool.shutdown(wait=False, cancel_futures=True)
        self.process.close()


def _link(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, link)
