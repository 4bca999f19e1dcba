"""Scoring in a child process (``quality.worker``) that loads the face models once: scoring then shares no
interpreter lock with the caller (a GPU worker's thread that feeds the GPU), and a crash in native code
costs a score, never the caller. One request at a time per ``ScoringProcess``; a ``ScoringPool`` shares a
few among threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import subprocess
import sys

from quality import face
from quality.score_clip import EXTRA_MISSING
from quality.score_fields import unscored

TIMEOUT_SECONDS = 600.0  # one clip; a stuck scorer is replaced rather than waited on forever


def available() -> bool:
    """Whether the extra of the chosen face models (``quality.face``) is installed, checked without importing it."""
    return face.available(face.chosen())


class ScoringProcess:
    def __init__(self, timeout: float = TIMEOUT_SECONDS):
        self.timeout = timeout
        self.child: subprocess.Popen | None = None

    def score(self, video: str, reference: str | None = None, boundaries: list[int] | None = None) -> dict:
        """Score one clip now (``boundaries``: where windows 2, 3, ... begin); a failure of the child becomes a
        record saying so (and a fresh child next time)."""
        if not available():
            return unscored(EXTRA_MISSING)
        try:
            child = self._child()
            stdin, stdout = child.stdin, child.stdout
            assert stdin is not None and stdout is not None, "the child is started with pipes"
            stdin.write(json.dumps({"video": str(video), "reference": reference, "boundaries": boundaries}) + "\n")
            stdin.flush()
            ready, _, _ = select.select([stdout], [], [], self.timeout)
            line = stdout.readline() if ready else None
            if line is None:
                raise TimeoutError(f"no answer in {self.timeout:.0f} s")
            if not line:
                raise RuntimeError(f"the scoring process ended (exit code {child.wait()})")
            return json.loads(line)
        except Exception as e:  # the clip is fine; only its scores are missing
            self.close()
            return unscored(f"scoring failed: {type(e).__name__}: {e}")

    def _child(self) -> subprocess.Popen:
        if self.child is None or self.child.poll() is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self.child = subprocess.Popen(
                [sys.executable, "-m", "quality.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        return self.child

    def close(self) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class ScoringPool:
    """``size`` scoring processes for as many threads: ``score`` takes an idle one (waiting while none is).
    Each child starts on its first clip, so a pool larger than the work costs nothing."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.idle: queue.Queue[ScoringProcess] = queue.Queue()
        for _ in range(self.size):
            self.idle.put(ScoringProcess())

    def score(self, video: str, reference: str | None = None, boundaries: list[int] | None = None) -> dict:
        scorer = self.idle.get()
        try:
            return scorer.score(video, reference, boundaries)
        finally:
            self.idle.put(scorer)

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get().close()
