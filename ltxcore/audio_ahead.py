"""The next item's audio, read while this item renders.

Decoding an item's audio and conditioning it (noise, loudness) is host work, about 0.1 s for the reference
clip, and the GPU waited for it at the start of every item (BENCHMARKS.md, the steady-state profile). A
worker that knows its next item asks for that item's audio ahead (:meth:`AudioAhead.ahead`); the render then
takes it (:meth:`AudioAhead.get`). It is the same function of the same request, on a thread, so the numbers
are the same, and an item whose audio cannot be read fails in its own render with its own error.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

from ltxcore.conditioning_audio import conditioning_clip
from ltxcore.local_files import FileIdentity, file_identity
from ltxcore.media import AudioClip, decode_audio
from ltxcore.request import RenderRequest

HeardAudio = tuple[AudioClip, AudioClip]  # (the clip the mp4 gets, the clip the model hears)
Frames = tuple[int, int]  # (shown, rendered)
HELD = 2  # read-ahead results kept: the next item, and one spare if the worker skipped one


def heard_audio(request: RenderRequest) -> HeardAudio:
    """A resolved request's audio: what the mp4 gets (the audio under its shown frames, no silence added), and
    the conditioned clip the model hears over every rendered frame (silence where the file or the window ends
    before them)."""
    seconds = request.render_frames / request.frame_rate
    window = seconds if request.audio_max_duration is None else min(seconds, request.audio_max_duration)
    clip = decode_audio(request.audio, request.audio_start_time, window).padded_to(seconds)
    noise, loudness = request.audio_conditioning_noise_db, request.audio_conditioning_loudness_lufs
    shown = clip.recorded(request.frames / request.frame_rate)
    return shown, conditioning_clip(clip, request.seed, noise, loudness)


def audio_key(request: RenderRequest) -> Hashable:
    """What :func:`heard_audio` reads from a request but its frame counts (which resolving may fill in), and
    which file is at its path now (a file replaced under the same name is another file)."""
    return (
        request.audio,
        _file_identity(request.audio),
        request.audio_start_time,
        request.frame_rate,
        request.audio_max_duration,
        request.seed,
        request.audio_conditioning_noise_db,
        request.audio_conditioning_loudness_lufs,
    )


def _file_identity(path: str) -> FileIdentity | None:
    try:
        return file_identity(path)
    except OSError:
        return None  # the render's own resolve says what is wrong


class AudioAhead:
    """Audio read ahead on one thread; ``resolve`` is the engine's (it fills the frame count from the audio)."""

    def __init__(self, resolve: Callable[[RenderRequest], RenderRequest]):
        self.resolve = resolve
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio-ahead")
        self.pending: list[tuple[Hashable, Future[tuple[Frames, HeardAudio]]]] = []

    def ahead(self, request: RenderRequest) -> None:
        """Start reading ``request``'s audio (an unresolved request, as the worker holds it)."""
        read = (audio_key(request), self.pool.submit(self._read, request))
        self.pending = [*self.pending[-(HELD - 1) :], read]

    def get(self, request: RenderRequest) -> HeardAudio:
        """``heard_audio(request)`` (a resolved request): read ahead if it was, else now. Only a read of this
        request's own audio is waited for."""
        key = audio_key(request)
        for entry in [e for e in self.pending if e[0] == key]:
            self.pending.remove(entry)
            try:
                frames, heard = entry[1].result()
            except Exception:  # read again below: the render fails with the error itself
                continue
            if frames == _frames(request):
                return heard
        return heard_audio(request)

    def clear(self) -> None:
        """Forget reads not taken (a new shard: its files may have been fetched again under the same names)."""
        self.pending = []

    def _read(self, request: RenderRequest) -> tuple[Frames, HeardAudio]:
        resolved = self.resolve(request)
        return _frames(resolved), heard_audio(resolved)


def _frames(request: RenderRequest) -> Frames:
    """A resolved request's frames shown and rendered: how much audio :func:`heard_audio` gives each clip."""
    return request.frames, request.render_frames
