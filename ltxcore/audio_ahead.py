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
from ltxcore.media import AudioClip, decode_audio
from ltxcore.request import RenderRequest

HeardAudio = tuple[AudioClip, AudioClip]  # (the clip the mp4 gets, the clip the model hears)
HELD = 2  # read-ahead results kept: the next item, and one spare if the worker skipped one


def heard_audio(request: RenderRequest) -> HeardAudio:
    """A resolved request's audio window (silence where the file or the window ends before the video), and the
    conditioned clip the model hears."""
    seconds = request.frames / request.frame_rate
    window = seconds if request.audio_max_duration is None else min(seconds, request.audio_max_duration)
    clip = decode_audio(request.audio, request.audio_start_time, window).padded_to(seconds)
    noise, loudness = request.audio_conditioning_noise_db, request.audio_conditioning_loudness_lufs
    return clip, conditioning_clip(clip, request.seed, noise, loudness)


def audio_key(request: RenderRequest) -> Hashable:
    """Everything :func:`heard_audio` reads from a resolved request."""
    return (
        request.audio,
        request.audio_start_time,
        request.frames,
        request.frame_rate,
        request.audio_max_duration,
        request.seed,
        request.audio_conditioning_noise_db,
        request.audio_conditioning_loudness_lufs,
    )


class AudioAhead:
    """Audio read ahead on one thread; ``resolve`` is the engine's (it fills the frame count from the audio)."""

    def __init__(self, resolve: Callable[[RenderRequest], RenderRequest]):
        self.resolve = resolve
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio-ahead")
        self.pending: list[Future[tuple[Hashable, HeardAudio]]] = []

    def ahead(self, request: RenderRequest) -> None:
        """Start reading ``request``'s audio (an unresolved request, as the worker holds it)."""
        self.pending = [*self.pending[-(HELD - 1) :], self.pool.submit(self._read, request)]

    def get(self, request: RenderRequest) -> HeardAudio:
        """``heard_audio(request)`` (a resolved request): read ahead if it was, else now."""
        key = audio_key(request)
        for future in list(self.pending):
            try:
                found, heard = future.result()
            except Exception:  # that item's own render reads it again and fails with the error
                self.pending.remove(future)
                continue
            if found == key:
                self.pending.remove(future)
                return heard
        return heard_audio(request)

    def _read(self, request: RenderRequest) -> tuple[Hashable, HeardAudio]:
        resolved = self.resolve(request)
        return audio_key(resolved), heard_audio(resolved)
