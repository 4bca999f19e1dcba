"""What validation and planning know of each distinct media file, found once per file and shared by both.

A campaign of 100,000 rows names a handful of files. Each is probed (audio), decoded (image), looked up
(remote), identified (size and modification time) and searched for the pauses its items' windows need once,
and every row reads the answer. ``gather`` does the work of all distinct files up front in threads: it is
FFmpeg, image decoding and object-store round trips, which release the GIL. A remote audio file is downloaded
once for its probe and its pauses, then dropped. ``reads`` counts the files opened, per kind, for tests.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ltxcore.errors import RenderInputError
from ltxcore.image_files import decoded_size, size_problem
from ltxcore.media import probe_audio
from ltxcore.pauses import Pauses, find_pauses
from manifests.clip_checks import clip_frames
from manifests.item import Item, media_paths
from manifests.ticker import Ticker
from manifests.windows import pause_span
from storage.fs import StorageError, exists, file_identity, is_uri, local_copy

THREADS = 8  # files worked on at once: enough to hide object-store latency, few enough for 2 cores


@dataclass(frozen=True)
class AudioFacts:
    seconds: float | None  # None: it cannot be read, said by ``problem``
    problem: str | None = None


class MediaFacts:
    """A memo of media facts for one command; safe to share between threads."""

    def __init__(self, threads: int = THREADS):
        self.threads = threads
        self.reads: Counter[tuple[str, str]] = Counter()  # (kind, file) -> times opened
        self._audio: dict[str, AudioFacts] = {}
        self._images: dict[str, tuple[int, int] | str] = {}  # size, or why it cannot be read
        self._remote: dict[str, str | None] = {}  # why a remote file cannot be used, or None
        self._identity: dict[str, dict] = {}
        self._pauses: dict[tuple[str, float, float], Pauses] = {}
        self._local: dict[str, str] = {}  # remote audio -> its copy while ``gather`` works on it
        self._lock = threading.Lock()

    def audio(self, uri: str) -> AudioFacts:
        """Seconds of an audio file (a remote one is downloaded for it), or why it cannot be read."""
        if uri not in self._audio:
            with self._readable(uri) as path:
                self._probe(uri, path)
        return self._audio[uri]

    def local_audio_seconds(self, uri: str | None) -> float | None:
        """Seconds of a local audio file; None when it is remote (not fetched to validate) or unreadable."""
        if not isinstance(uri, str) or is_uri(uri) or not Path(uri).is_file():
            return None
        return self.audio(uri).seconds

    def image_problem(self, path: str, crf: int) -> str | None:
        """Why a local image cannot condition a clip re-compressed at ``crf``, or None."""
        if path not in self._images:
            self._count("image", path)
            self._images[path] = decoded_size(path)
        found = self._images[path]
        return found if isinstance(found, str) else size_problem(path, *found, crf)

    def remote_problem(self, uri: str) -> str | None:
        """Why a remote file cannot be used (absent, unreadable), or None."""
        if uri not in self._remote:
            self._count("lookup", uri)
            try:
                self._remote[uri] = None if exists(uri) else f"{uri} does not exist."
            except (StorageError, OSError) as e:
                self._remote[uri] = f"{uri} cannot be read: {e}"
        return self._remote[uri]

    def identity(self, uri: str) -> dict:
        """``storage.fs.file_identity`` of a file, once."""
        if uri not in self._identity:
            self._count("identity", uri)
            self._identity[uri] = file_identity(uri)
        return self._identity[uri]

    def pauses(self, uri: str, start: float, seconds: float) -> Pauses:
        """The pauses of ``seconds`` of ``uri`` from ``start`` (``ltxcore.pauses``), once per span."""
        key = (uri, start, seconds)
        if key not in self._pauses:
            with self._readable(uri) as path:
                self._count("pauses", uri)
                self._pauses[key] = find_pauses(path, start, seconds)
        return self._pauses[key]

    @contextmanager
    def _readable(self, uri: str) -> Iterator[str]:
        """A local path of ``uri``: the file itself, the copy ``gather`` holds, or a copy downloaded for this."""
        if not is_uri(uri) or uri in self._local:
            yield self._local.get(uri, uri)
            return
        with local_copy(uri) as path:
            self._count("download", uri)
            yield str(path)

    def gather(self, items: Iterable[Item], remote_audio: bool = False) -> None:
        """Learn everything ``items`` will ask of their files, one task per distinct file, in threads. Remote
        audio is downloaded (and its items' pauses found) only with ``remote_audio`` (planning, not
        validation)."""
        by_audio: dict[str, list[Item]] = {}
        images: dict[str, None] = {}
        remote: dict[str, None] = {}
        for item in items:
            for name, value in media_paths(item.values):
                if not isinstance(value, str):
                    continue
                if name == "audio" and (remote_audio or not is_uri(value)):
                    by_audio.setdefault(value, []).append(item)
                elif is_uri(value):
                    remote[value] = None
                elif name != "audio":
                    images[value] = None
        tasks: list[Callable[[], object]] = [partial(self._gather_audio, uri, users) for uri, users in by_audio.items()]
        tasks += [partial(self.image_problem, path, 0) for path in images if Path(path).is_file()]
        tasks += [partial(self.remote_problem, uri) for uri in remote]
        tick = Ticker("media files looked at", len(tasks))
        with ThreadPoolExecutor(self.threads) as pool:
            for done, finished in enumerate(as_completed([pool.submit(task) for task in tasks])):
                tick(done)
                finished.result()

    def _gather_audio(self, uri: str, users: list[Item]) -> None:
        if not is_uri(uri):
            if Path(uri).is_file():
                self._pauses_of(uri, users)
            return
        with local_copy(uri) as path:
            self._count("download", uri)
            self._local[uri] = str(path)
            try:
                self._pauses_of(uri, users)
            finally:
                del self._local[uri]

    def _pauses_of(self, uri: str, users: list[Item]) -> None:
        """Probe the file, then find the pauses every item of it needs for its windows (``pause_span``): the
        windows themselves are planned once, by whoever asks for them."""
        seconds = self.audio(uri).seconds
        if seconds is None:
            return
        for item in users:
            frames = clip_frames(item, seconds)
            span = pause_span(item, frames) if frames else None
            if span is not None:
                self.pauses(uri, *span)

    def _probe(self, uri: str, path: str) -> AudioFacts:
        self._count("probe", uri)
        try:
            facts = AudioFacts(probe_audio(path).duration)
        except RenderInputError as e:
            facts = AudioFacts(None, e.message.replace(path, uri))  # a remote file's copy is named by its URI
        self._audio[uri] = facts
        return facts

    def _count(self, kind: str, uri: str) -> None:
        with self._lock:
            self.reads[(kind, uri)] += 1
