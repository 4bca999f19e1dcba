"""Audio in: probed and decoded with PyAV (the mp4s go out through ``ltxcore.mp4``).

Beyond upstream's reader: any PCM width, mono duplicated to the stereo the audio VAE needs, surround
downmixed, and short audio padded with silence (reported, not asserted).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.error
import numpy as np

from ltxcore.errors import RenderInputError

AUDIO_CODECS = {
    "pcm_s16le",
    "pcm_s24le",
    "pcm_s32le",
    "pcm_f32le",
    "pcm_f64le",
    "pcm_u8",
    "pcm_s16be",
    "pcm_s24be",
    "pcm_f32be",
    "mp3",
    "mp3float",
    "aac",
    "opus",
    "vorbis",
    "flac",
    "alac",
}
# Decoded before a seek target and dropped: an mp3 frame needs bytes of earlier frames (the bit reservoir),
# so the first ~80 ms after a bare seek come out as silence.
SEEK_PREROLL_SECONDS = 0.2


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float


@dataclass(frozen=True)
class AudioClip:
    """Stereo float32 samples in [-1, 1], shape (2, samples); ``padded_seconds`` of silence were appended."""

    samples: np.ndarray
    sample_rate: int
    padded_seconds: float = 0.0

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def padded_to(self, seconds: float) -> AudioClip:
        """Silence appended up to ``seconds`` (a window shorter than the video)."""
        missing = round(seconds * self.sample_rate) - self.samples.shape[1]
        if missing <= 0:
            return self
        samples = np.pad(self.samples, ((0, 0), (0, missing)))
        return AudioClip(samples, self.sample_rate, self.padded_seconds + missing / self.sample_rate)

    def recorded(self, seconds: float) -> AudioClip:
        """Its first ``seconds`` without the silence padded on: what an mp4 carries, which ends where the audio
        does."""
        real = self.samples.shape[1] - round(self.padded_seconds * self.sample_rate)
        return AudioClip(self.samples[:, : min(real, round(seconds * self.sample_rate))], self.sample_rate)


def _open(path: str, field: str) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise RenderInputError(field, f"cannot open {path} as media: {e}.") from e


def probe_audio(path: str, field: str = "audio") -> AudioInfo:
    """Codec, rate, channels and duration; raises if the file has no supported audio stream."""
    with _open(path, field) as container:
        stream = container.streams.audio[0] if container.streams.audio else None
        if stream is None or stream.time_base is None:
            raise RenderInputError(field, f"{path} has no audio stream.")
        codec = stream.codec_context.name
        if codec not in AUDIO_CODECS:
            raise RenderInputError(
                field, f"{path} uses the {codec} codec, which is not supported; use WAV, MP3, M4A/AAC, OGG or FLAC."
            )
        if stream.duration is not None:
            duration: float | None = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
        stored = _stored_seconds(container, stream)
        if stored is not None and (duration is None or stored < duration - HEADER_SLACK_SECONDS):
            duration = stored  # a truncated file whose header still gives the whole length
        if duration is None:
            container.seek(0)
            duration = sum(f.samples for f in container.decode(stream)) / stream.rate
        if duration <= 0:
            raise RenderInputError(field, f"{path} holds no audio: it is 0 seconds long.")
        return AudioInfo(codec, stream.rate, stream.channels, duration)


HEADER_SLACK_SECONDS = 0.5  # a header longer than the stored packets by more than this lies (a cut-off file)


def _stored_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """Seconds the file's audio packets cover, read without decoding them (0 when it holds none); None when
    they carry no times."""
    first = end = None
    packets = 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the empty packet that ends a demux
            continue
        packets += 1
        if packet.pts is not None and packet.duration is not None:
            first = packet.pts if first is None else min(first, packet.pts)
            end = packet.pts + packet.duration if end is None else max(end, packet.pts + packet.duration)
    if not packets:
        return 0.0
    if first is None or end is None or stream.time_base is None:
        return None
    return float((end - first) * stream.time_base)


def decode_audio(
    path: str,
    start: float = 0.0,
    duration: float | None = None,
    field: str = "audio",
    rate: int | None = None,
    mono: bool = False,
) -> AudioClip:
    """Decode ``[start, start + duration)`` to stereo float32 (``mono``: one channel) at the file's rate (or
    ``rate``, resampled while decoding, so a long file is never held at its own rate); pad with silence if the
    file ends first."""
    info = probe_audio(path, field)
    layout = "mono" if mono else ("stereo" if info.channels > 2 else None)
    out_rate = rate or info.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=out_rate)
    chunks: list[np.ndarray] = []
    decoded = 0  # samples in ``chunks``
    first_time: float | None = None
    end = None if duration is None else start + duration
    with _open(path, field) as container:
        stream = container.streams.audio[0]
        origin = stream.start_time or 0  # mp3 streams start at the encoder delay, not at 0
        time_base = stream.time_base or Fraction(1, info.sample_rate)  # a demuxed stream always has one
        if start > SEEK_PREROLL_SECONDS:
            target = origin + int((start - SEEK_PREROLL_SECONDS) / time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        try:
            for frame in container.decode(stream):
                time = float((frame.pts - origin) * time_base) if frame.pts is not None else None
                if first_time is None:
                    first_time = time if time is not None else 0.0
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    decoded += chunks[-1].shape[1]
                if end is not None and first_time + decoded / out_rate >= end:
                    break
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))  # what a rate change holds back
        except av.error.FFmpegError as e:
            raise RenderInputError(field, f"{path} could not be decoded: {e}.") from e
    if not chunks:
        raise RenderInputError(field, f"{path} contains no audio samples.")
    samples = np.concatenate(chunks, axis=1).astype(np.float32)
    if samples.shape[0] == 1 and not mono:
        samples = np.repeat(samples, 2, axis=0)
    skip = max(0, round((start - (first_time or 0.0)) * out_rate))
    samples = samples[:, skip:]
    if samples.shape[1] == 0:
        raise RenderInputError("audio_start_time", f"{start}s is past the end of {path} ({info.duration:.2f}s).")
    padded = 0.0
    if duration is not None:
        want = round(duration * out_rate)
        if samples.shape[1] < want:
            padded = (want - samples.shape[1]) / out_rate
            samples = np.pad(samples, ((0, 0), (0, want - samples.shape[1])))
        samples = samples[:, :want]
    return AudioClip(np.ascontiguousarray(np.clip(samples, -1.0, 1.0)), out_rate, padded)
