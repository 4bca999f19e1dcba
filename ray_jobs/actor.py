"""The render worker: Ray's batch-inference pattern, a class that loads the model in ``__init__`` (started
before the driver has planned the run), warms up for the run's shapes in ``ready`` and renders shards in
``__call__``. One per GPU (or per CPU slot on a machine without GPUs).

Every item ends as exactly one result row of its shard attempt, written as soon as the item is done.
A failure inside one item becomes a ``failed`` row, named by its exception's type, with its traceback, and the
worker moves on; only a dead process loses the item it was on, which the driver then retries elsewhere.
What cannot reach the record (an event for the driver, late scores the run no longer takes) is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ray
import ray.actor
import torch

from ltxcore import compile_cache
from ltxcore.artifacts import ArtifactCache
from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from ltxcore.errors import RenderInputError
from ltxcore.long_form import WindowFolder, render_windows
from ltxcore.render_result import RenderResult
from ltxcore.request import RenderRequest
from ltxcore.windows import WindowRecord
from manifests.item import media_files
from manifests.model_section import bundle_identity
from ray_jobs.device_turns import DeviceTurns, render_then_finish
from ray_jobs.messages import (
    Event,
    ItemDone,
    ItemStarted,
    PromptsEnhanced,
    ShardStarted,
    WindowDone,
    WorkerReady,
)
from ray_jobs.scratch import scratch_folder
from ray_jobs.shards import Shard
from ray_jobs.weights import localize
from ray_jobs.worker_scoring import ClipScorer, LateScores, PendingScore, score_writer, written_then_scores
from runstore.enhanced import enhancement_key
from runstore.plan import PlannedItem, RenderWindow
from runstore.results import ShardRecorder, error_summary, error_text, result_row
from runstore.run_faults import RunFault, folder_gone, run_fault
from runstore.run_folder import RunFolder
from runstore.window_store import local_windows
from storage.fs import StorageError, download, is_uri, upload

HASH_CHUNK = 1 << 20
log = logging.getLogger(__name__)  # a Ray worker's log lines reach the driver's console and the worker's log


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tell(events, event: Event) -> None:
    """Progress is advisory: an unreachable event queue must never fail an item (results are the record)."""
    if events is None:
        return
    try:
        events.put(event, timeout=10)
    except Exception as e:  # any failure of the queue actor
        log.warning("the driver was not told %s (%s: %s)", event, type(e).__name__, e)


@dataclass(frozen=True)
class WorkerSettings:
    """What every render worker of a driver session is built with (the driver derives it from the run's options
    and model, before it plans the run: what the plan decides, the warm-up, comes in ``RenderActor.ready``)."""

    paths: dict  # the bundle's files, local paths or URIs
    quantization: str
    device: str
    run_uri: str
    run_id: str
    session: str
    threads: int = 0  # torch threads on a CPU worker; 0: torch's default
    compile: bool = False  # compile the transformer (warmed up for the run's requests in ``RenderActor.ready``)
    transformer: str = "dev"  # the checkpoint to hold, dev or distilled
    max_loras: int = 4  # user LoRAs held at once
    cache: str | None = None  # the artifact cache (``ltxcore.artifacts``), a folder or URI; None: the node's own


class RenderActor:
    def __init__(self, settings: WorkerSettings):
        if settings.threads:
            torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        quantization, transformer = settings.quantization, settings.transformer
        bundle = ModelBundle.from_paths(**localize(settings.paths), quantization=quantization, transformer=transformer)
        identity = bundle_identity(bundle.paths(), quantization, transformer)
        self.identity = {"model_version": bundle.model_version(), **identity}
        # keyed by the bundle as the run names it: a bundle fetched from object storage has the same key on every node
        self.cache = ArtifactCache.of(settings.cache, bundle_identity(settings.paths, quantization, transformer))
        self.compiles = settings.compile
        self.engine = Engine(
            bundle, settings.device, compile=self.compiles, max_loras=settings.max_loras, artifacts=self.cache
        )
        self.load_seconds = time.perf_counter() - started
        self.scratch = scratch_folder()
        weakref.finalize(self, shutil.rmtree, self.scratch, ignore_errors=True)  # also at interpreter exit
        self.media: dict[str, str] = {}
        self.run = RunFolder(settings.run_uri)
        self.warmed: WorkerReady | None = None  # what ``ready`` said, once warmed up
        self.run_id, self.session = settings.run_id, settings.session
        self.host = socket.gethostname()
        self.device = torch.cuda.get_device_name() if settings.device.startswith("cuda") else "cpu"
        self.scorer = ClipScorer(folder=self.scratch / "scoring")  # quality scores, in child processes, per mp4
        weakref.finalize(self, self.scorer.close)
        self.late_scores: dict[str, PendingScore] = {}  # item id -> scores still running when its row was due
        self.late = LateScores(score_writer(self.run, self.session))  # their records, once they arrive
        # the device is one shard's at a time: the next shard (the driver hands a worker two) renders while this
        # one's last mp4 is encoded, scored and uploaded (``WORKER_OPTIONS``' two concurrent calls)
        self.turns = DeviceTurns()

    def _warm_up(self, request: RenderRequest) -> float:
        """Warm up with the request's LoRAs; a LoRA that cannot be fetched or read fails its items later,
        not the worker, which then warms up without it."""
        try:
            loras = tuple(replace(lora, path=self._fetch(lora.path)) for lora in request.loras)
            return self.engine.warm_up(replace(request, loras=loras))
        except (RenderInputError, StorageError, OSError):
            return self.engine.warm_up(replace(request, loras=()))

    def settle(self) -> None:
        """Return once every clip handed to the scorer has its scores recorded (the driver asks at the end)."""
        self.scorer.settle()
        self.late.flush()

    def ready(self, warm: tuple[RenderRequest, ...] = ()) -> WorkerReady:
        """Warm up for ``warm`` (one request per graph set of the run, ``render.warm_requests``), once per process:
        the driver starts workers before it has planned the run, and asks a worker Ray restarted again."""
        if self.warmed is None:
            seconds, compiled = 0.0, None
            if warm:
                hit, seconds = compile_cache.warm_up_shared(self.cache, self.engine, warm, self._warm_up)
                compiled = ("hit" if hit else "miss") if self.compiles else None
            self.warmed = WorkerReady(self.host, self.device, os.getpid(), self.load_seconds, seconds, compiled)
        return self.warmed

    def __call__(self, shard: Shard, events=None, turn: int = 0) -> list[ItemDone]:
        """Render every item of ``shard``; return one ``ItemDone`` per row it wrote (each also told to ``events``
        as it happens; a ``cuts`` window writes none: it is in the run folder once the call returns). The call
        returns once every row of the shard is written; it takes the device at its ``turn`` (``DeviceTurns``).

        Each item's mp4 is encoded on a CPU thread, then scored in a child process, while the next item renders
        on the device; its row is written once the next item's device work is done, and scores not ready by
        then are added when they are (``ray_jobs.worker_scoring``). The shard's last item is finished after
        the device is handed on: the next shard this worker holds renders meanwhile."""
        self.turns.take(turn)
        holding = True
        _tell(events, ShardStarted((shard.shard_id, shard.attempt)))

        def hand_on() -> None:
            nonlocal holding
            if holding:
                holding = False
                self.turns.hand_on()

        try:
            recorder = ShardRecorder(self.run.results_uri, self.run_id, self.session, shard.shard_id, shard.attempt)
            self._prune_media(shard)
            requests = self._requests(shard, events)

            self.engine.audio_ahead.clear()
            # a retried shard reads nothing ahead: a read that kills the worker is blamed on the item before it
            following = {} if shard.attempt else dict(zip(map(id, shard.items), shard.items[1:], strict=False))

            def start(planned: PlannedItem) -> Callable[[], dict | None]:  # told first: if it kills the
                _tell(events, ItemStarted((shard.shard_id, shard.attempt), planned.id))  # worker, the driver knows
                self._read_ahead(following.get(id(planned)), requests)
                return self._start(planned, requests[planned.id], lambda event: _tell(events, event))

            rows = render_then_finish(shard.items, start, rendered=hand_on)
            finished = [self._record(row, recorder, events) for row in rows if row is not None]
        except RunFault:
            raise
        except Exception as e:
            if fault := self._run_fault(e):  # not the shard's fault: the driver stops the run
                raise fault from e
            raise
        finally:
            hand_on()
        self.late.flush()
        return finished

    def _read_ahead(self, planned: PlannedItem | None, requests: dict[str, RenderRequest | Exception]) -> None:
        """The next item's audio read while this one renders (a long item reads its own, window by window)."""
        if planned is None or len(planned.window_plan) > 1:
            return
        if isinstance(request := requests[planned.id], RenderRequest):
            self.engine.audio_ahead.ahead(request)

    def _record(self, row: dict, recorder: ShardRecorder, events) -> ItemDone:
        if not self.run.owned_by(self.session):
            ray.actor.exit_actor()  # a newer driver session owns the run: write nothing more
        recorder.add(row)
        pending = self.late_scores.pop(row["item_id"], None)
        if pending is not None:
            self.late.add(row, pending)
        done = ItemDone(
            row["item_id"],
            row["status"],
            self.host,
            os.getpid(),
            (row["finished_at"] - row["started_at"]).total_seconds(),
            error_summary(row["error_message"]) if row.get("error_message") else None,
        )
        _tell(events, done)
        return done

    def _requests(self, shard: Shard, events) -> dict[str, RenderRequest | Exception]:
        """Each item's request (or why it has none), its media fetched; then the shard's prompts, enhanced (each
        key once) and encoded before its first item. The enhanced prompts written here are told to the driver
        at once, so that no other worker writes them again."""
        out: dict[str, RenderRequest | Exception] = {}
        for planned in shard.items:
            try:
                out[planned.id] = planned.item.to_request(self._local_media(planned), planned.prompt_enhanced)
            except Exception as e:  # becomes the item's failed row
                out[planned.id] = e
        ready = {item_id: r for item_id, r in out.items() if isinstance(r, RenderRequest)}
        enhancer = self.engine.enhancer
        generated, seconds = enhancer.generated, enhancer.seconds
        prepared = dict(zip(ready, self.engine.prepare_prompts(list(ready.values())), strict=True))
        out.update(prepared)
        failed = [item_id for item_id, r in prepared.items() if isinstance(r, Exception)]
        if failed:  # each of these items fails with its error (and traceback), not enhanced a second time
            log.warning("prompt enhancement failed for %s: %s", ", ".join(failed), prepared[failed[0]])
        if enhancer.generated > generated:
            written = {
                enhancement_key(p.item): r.prompt_enhanced
                for p in shard.items
                if isinstance(r := prepared.get(p.id), RenderRequest)
                and p.prompt_enhanced is None
                and r.prompt_enhanced is not None
            }
            _tell(events, PromptsEnhanced(tuple(written.items()), enhancer.seconds - seconds, self.host))
        return out

    def _prune_media(self, shard: Shard) -> None:
        """Delete fetched inputs that ``shard`` does not use: scratch holds at most one shard's media and LoRAs
        (and the video being rendered, which the upload moves out), while a presenter image or brand LoRA that
        every shard shares stays."""
        wanted = {uri for p in shard.items for uri in media_files(p.item.values)}
        held = set(self.engine.adapters.loaded)  # LoRAs the engine holds keep their files, re-read only if changed
        for uri in [uri for uri in self.media if uri not in wanted and self.media[uri] not in held]:
            shutil.rmtree(Path(self.media.pop(uri)).parent, ignore_errors=True)

    def _local_media(self, planned: PlannedItem) -> dict[str, str]:
        """Object-store inputs fetched once per worker while shards keep using them (see ``_prune_media``)."""
        for uri in media_files(planned.item.values):
            self._fetch(uri)
        return self.media

    def _fetch(self, uri: str) -> str:
        """A local copy of an object-store input (a local path is its own copy)."""
        if is_uri(uri) and uri not in self.media:
            local = self.scratch / "media" / hashlib.sha256(uri.encode()).hexdigest()[:16] / uri.rsplit("/", 1)[-1]
            self.media[uri] = str(download(uri, local))
        return self.media.get(uri, uri)

    def _start(
        self, planned: PlannedItem, request: RenderRequest | Exception, tell: Callable[[Event], None]
    ) -> Callable[[], dict | None]:
        """Render ``planned`` on the device (``tell``: the driver hears of each window rendered); return what
        finishes its row later (mp4, hash, upload), or None: a ``cuts`` window, which has no row."""
        common = {
            "bundle": self.identity,
            "quantization": self.engine.bundle.quantization,
            "transformer": self.engine.bundle.transformer,
            "device": self.device,
            "host": self.host,
            "started_at": datetime.now(UTC),
            "prompt_enhanced": getattr(request, "prompt_enhanced", None) if planned.item.enhance_prompt else None,
        }
        local = self.scratch / f"{planned.id}.mp4"
        windows = planned.window_plan
        try:
            if isinstance(request, Exception):
                raise request
            if len(windows) > 1:
                result = self._render_windows(planned, request, local, tell)
            else:
                result = self.engine.render(request, local, background_mux=True)
            common["prompt_enhanced"] = result.prompt_enhanced
        except Exception as e:  # one bad item must never stop the shard
            row = self._failed(planned, e, local, common)
            return lambda: row
        if result.output is None:  # a cuts window, in the run folder: the item is joined once all are there
            return lambda: None
        rendered_at = datetime.now(UTC)
        first = planned.item.first_image
        reference = self.media.get(first, first) if first is not None else None
        boundaries = [w.start for w in windows[1:]]
        scoring = self.scorer.start(local, reference, result.muxing, boundaries)
        return lambda: self._finish(planned, result, local, common, rendered_at, scoring)

    def _render_windows(
        self, planned: PlannedItem, request: RenderRequest, local: Path, tell: Callable[[Event], None]
    ) -> RenderResult:
        """A long item, window by window, its finished windows kept in the run folder: a chain resumes from its
        last finished window, and a ``cuts`` part renders just its window (its join part joins them all). Each
        window is told as rendered, for the progress line."""
        path, saved = local_windows(self.run, planned, self.scratch)
        only = {planned.part.index} if isinstance(planned.part, RenderWindow) else None

        def rendered(record: WindowRecord) -> None:
            tell(WindowDone(planned.id, record.index, self.host, record.end_s - record.start_s))

        folder = WindowFolder(path, saved)
        return render_windows(self.engine, request, planned.window_plan, local, folder, only, rendered)

    def _finish(
        self,
        planned: PlannedItem,
        result: RenderResult,
        local: Path,
        common: dict,
        rendered_at: datetime,
        scoring: PendingScore,
    ) -> dict:
        uri = self.run.video_uri(planned.id)
        try:
            quality = written_then_scores(result, scoring)  # None while still running: added later, see _record
            if quality is None:
                self.late_scores[planned.id] = scoring
            size, digest = local.stat().st_size, sha256_file(local)
            if not self.run.owned_by(self.session):
                ray.actor.exit_actor()
            upload(local, uri)
        except Exception as e:
            return self._failed(planned, e, local, common)
        written_at = rendered_at + timedelta(seconds=result.timings.get("mux", 0.0))  # when its mp4 was done
        return result_row(
            planned,
            status="ok",
            output_uri=uri,
            output_bytes=size,
            output_sha256=digest,
            audio_padded_seconds=result.audio_padded_seconds,
            timings=result.timings,
            peak_memory_bytes=result.peak_memory,
            finished_at=written_at,
            quality=quality,
            windows=[asdict(w) for w in result.windows] if len(result.windows) > 1 else None,
            **common,
        )

    def _run_fault(self, error: Exception) -> RunFault | None:
        """The fault of the run behind ``error``, if any (``runstore.run_faults``); a run folder that lost its plan
        is gone."""
        if fault := run_fault(error, self.run.uri):
            return fault
        try:
            return None if self.run.exists() else folder_gone(self.run.uri)
        except Exception:  # storage that cannot say: the error stands as it is
            return None

    def _failed(self, planned: PlannedItem, error: Exception, local: Path, common: dict) -> dict:
        """The item's failed row; a fault of the run (a full disk, a lost run folder) stops the shard instead."""
        local.unlink(missing_ok=True)
        if fault := self._run_fault(error):
            raise fault from error
        if isinstance(error, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        message = error_text(str(error) or type(error).__name__, "".join(traceback.format_exception(error)))
        return result_row(
            planned,
            status="failed",
            error_type=type(error).__name__,
            error_message=message,
            finished_at=datetime.now(UTC),
            **common,
        )
