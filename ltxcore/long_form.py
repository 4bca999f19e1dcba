"""A clip longer than one model window, rendered window by window into one mp4 (``ltxcore/windows.py`` plans
the windows).

Each window is a request of its own: its frames' stretch of the audio (context frames included, so lips stay in
sync across a boundary), its own seed (``window_seed``), the item's images (frame 0 conditions every window; a
later image the window that holds its frame). In ``continuous`` mode a window is conditioned on the previous
window's last ``context_frames`` decoded frames, VAE re-encoded (``Engine.render_window``), and those frames are
not shown twice. In ``cuts`` mode windows are independent.

A finished window is kept in a :class:`WindowFolder`: its shown frames as a video-only segment, the frames the
next window continues from, and its record, written last. A chain that stops (a lost worker) resumes from its
last finished window; the mp4 is joined from the segments, with the item's original audio muxed once, when the
last window is there. Host memory holds one window's frames at a time, whatever the clip's length.

A clip of one window is rendered by ``Engine.render`` itself, exactly as before windows existed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ltxcore.engine import Engine
from ltxcore.errors import RenderInputError
from ltxcore.media import AudioClip, decode_audio, probe_audio
from ltxcore.mp4 import join_segments, write_segment
from ltxcore.render_result import RenderResult
from ltxcore.request import RenderRequest
from ltxcore.windows import Window, WindowRecord, window_file, window_seed


class WindowFolder:
    """A long clip's finished windows (a local folder): ``window-K.mp4`` (the frames it shows), ``window-K.npy``
    (its last context frames, continuous mode) and ``window-K.json`` (its record: written last, so a window
    with a record is whole)."""

    def __init__(self, path: str | Path, saved: Callable[[Path], None] | None = None):
        """``saved`` is told each file once it is whole, the record last (e.g. to copy it to object storage)."""
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.saved = saved or (lambda _: None)

    def _file(self, index: int, suffix: str) -> Path:
        return self.path / window_file(index, suffix)

    def segment(self, index: int) -> Path:
        return self._file(index, ".mp4")

    def records(self) -> dict[int, WindowRecord]:
        out = {}
        for path in sorted(self.path.glob("window-*.json")):
            record = WindowRecord(**json.loads(path.read_text()))
            if self.segment(record.index).is_file():
                out[record.index] = record
        return out

    def context(self, index: int) -> torch.Tensor | None:
        path = self._file(index, ".npy")
        return torch.from_numpy(np.load(path)) if path.is_file() else None

    def save(
        self,
        record: WindowRecord,
        shown: torch.Tensor,
        fps: float,
        context: torch.Tensor | None,
        encode: Callable[[Path, list[torch.Tensor], float], object] = write_segment,
    ) -> None:
        """Keep a finished window: ``encode`` writes its segment (the worker's encoder process, or here)."""
        encode(self.segment(record.index), [shown], fps)
        self.saved(self.segment(record.index))
        if context is not None:
            tmp = self._file(record.index, f".{os.getpid()}.partial.npy")
            np.save(tmp, context.numpy())
            os.replace(tmp, self._file(record.index, ".npy"))
            self.saved(self._file(record.index, ".npy"))
        tmp = self._file(record.index, f".{os.getpid()}.partial.json")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, self._file(record.index, ".json"))
        self.saved(self._file(record.index, ".json"))


def window_request(request: RenderRequest, window: Window) -> RenderRequest:
    """The request of one window: its frames, its stretch of the audio, its seed and the images it holds."""
    fps, first = request.frame_rate, window.render_start
    max_duration = request.audio_max_duration
    if max_duration is not None:
        max_duration = max(1 / fps, max_duration - first / fps)
    images = tuple(
        replace(image, frame=0 if image.frame == 0 else image.frame - first)
        for _, image in request.conditioning_images()
        if image.frame == 0 or first <= image.frame < first + window.rendered
    )
    return replace(
        request,
        num_frames=window.rendered,
        audio_start_time=request.audio_start_time + first / fps,
        audio_max_duration=max_duration,
        seed=window_seed(request.seed, window.index),
        image=None,
        images=images,
    )


def render_windows(
    engine: Engine,
    request: RenderRequest,
    windows: tuple[Window, ...],
    output: str | Path,
    folder: WindowFolder | None = None,
    only: set[int] | None = None,
    on_window: Callable[[WindowRecord], None] | None = None,
) -> RenderResult:
    """Render ``request`` as ``windows`` into ``output``. ``folder`` keeps finished windows (default: beside
    ``output``); windows already there are not rendered again. ``only``: render just these windows (``cuts``
    windows spread over workers) and join nothing (``result.output`` is None): one call without ``only`` joins
    them, so two workers never write one mp4. ``on_window`` hears of each window rendered (progress)."""
    request = engine.resolve(request)
    if len(windows) == 1:
        result = engine.render(request, output)
        result.windows = [_record(request, windows[0], request.seed, sum(result.timings.values()))]
        return result
    folder = folder or WindowFolder(Path(output).with_name(f".{Path(output).stem}.windows"))
    done = folder.records()
    timings: dict[str, float] = {}
    peaks: dict[str, int] = {}
    enhanced = request.prompt_enhanced
    padded = 0.0
    saving: Future | None = None  # the last window's segment, encoded while the next window renders
    carried: dict[int, torch.Tensor] = {}  # its last frames, which the next window continues from
    for window in windows:
        if window.index in done or (only is not None and window.index not in only):
            continue
        context = None
        if window.context:  # the previous window's last frames: still in memory, or kept in the folder
            context = carried.get(window.index - 1)
            context = folder.context(window.index - 1) if context is None else context
            if context is None:
                raise RenderInputError("long_form", f"window {window.index + 1} needs window {window.index}'s frames.")
        started = time.perf_counter()
        this = window_request(replace(request, prompt_enhanced=enhanced), window)
        result, chunks = engine.render_window(this, context)
        enhanced = enhanced or result.prompt_enhanced
        frames = torch.cat(chunks)
        del chunks
        end = window.context + window.frames  # past it: frames rendered to fill the window's length, dropped
        shown = frames[window.context : end]
        keep = frames[end - request.context_frames : end].clone() if request.long_form == "continuous" else None
        del frames
        # the result's padding runs to the window's rendered end: count it to the end of the frames it shows
        padded = max(padded, result.audio_padded_seconds - (window.rendered - end) / request.frame_rate)
        for name, seconds in result.timings.items():
            timings[name] = timings.get(name, 0.0) + seconds
        for name, peak in result.peak_memory.items():
            peaks[name] = max(peaks.get(name, 0), peak)
        record = _record(request, window, this.seed, time.perf_counter() - started)
        if saving is not None:  # at most one window's encode in flight: host memory stays bounded
            saving.result()
        saving = engine.muxer.submit(folder.save, record, shown, request.frame_rate, keep, engine.encoder.write_segment)
        done[window.index] = record
        carried = {window.index: keep} if keep is not None else {}
        if on_window is not None:
            on_window(record)
    if saving is not None:
        saving.result()
    complete = only is None and all(w.index in done for w in windows)
    if complete:
        started = time.perf_counter()
        segments = [folder.segment(w.index) for w in windows]
        join_segments(output, segments, request.frame_rate, _audio_reader(request))
        timings["mux"] = timings.get("mux", 0.0) + time.perf_counter() - started
    result = RenderResult(
        output=str(output) if complete else None,
        num_frames=sum(w.frames for w in windows),
        height=request.height,
        width=request.width,
        frame_rate=request.frame_rate,
        seed=request.seed,
        audio_padded_seconds=padded,
        timings=timings,
        peak_memory=peaks,
        prompt_enhanced=enhanced if request.enhance_prompt else None,
    )
    result.windows = [done[w.index] for w in windows if w.index in done]
    return result


def _record(request: RenderRequest, window: Window, seed: int, seconds: float) -> WindowRecord:
    start, end = window.seconds(request.frame_rate)
    by = f"{socket.gethostname()}/{os.getpid()}"
    return WindowRecord(window.index, window.start, window.frames, start, end, seed, seconds, window.in_pause, by)


def _audio_reader(request: RenderRequest):
    """``(first_frame, frames) -> AudioClip``: the original audio of those frames of the clip, none past the
    audio window's end (``join_segments`` pads what is not the end of the clip)."""
    fps = request.frame_rate
    rate = probe_audio(request.audio).sample_rate
    limit = request.audio_max_duration
    nothing = AudioClip(np.zeros((2, 0), np.float32), rate)

    def read(first: int, count: int) -> AudioClip:
        offset, seconds = first / fps, count / fps
        if limit is not None:
            seconds = min(seconds, limit - offset)
        if seconds <= 0:
            return nothing
        try:
            return decode_audio(request.audio, request.audio_start_time + offset, seconds).recorded(seconds)
        except RenderInputError:  # the window starts past the file's end
            return nothing

    return read
