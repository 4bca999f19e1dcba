"""Audio in, mp4 out. PyAV does the decoding and muxing.

Beyond upstream's reader: any PCM width, mono duplicated to the stereo the audio VAE needs, surround
downmixed, and short audio padded with silence (reported, not asserted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.audio
import av.container
import av.error
import numpy as np

from ltxcore.errors import RenderInputError

if TYPE_CHECKING:  # probing, decoding and the mux child need no torch; a worker writes torch tensors
    import torch

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
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


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


def _aac_rate(rate: int) -> int:
    return rate if rate in AAC_RATES else 48000


@dataclass(frozen=True)
class H264Settings:
    """libx264's speed/size trade and its thread count (0: libx264 picks, 1.5 per core)."""

    preset: str = "veryfast"
    crf: int = 18
    threads: int = 0


def write_mp4(
    path: str | Path,
    frames: Iterable[torch.Tensor | np.ndarray],
    fps: float,
    audio: AudioClip,
    num_frames: int,
    h264: H264Settings = H264Settings(),
) -> None:
    """H.264 + AAC. Written to a temporary name beside ``path`` and renamed, so ``path`` is never partial.

    ``frames`` yields uint8 chunks shaped (f, h, w, 3), torch tensors or numpy arrays (the mux child's, which
    never imports torch). The audio track is cut to the video's length, never padded: it ends where ``audio``
    does.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    rate = Fraction(fps).limit_denominator(1001)
    written = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            streams: dict = {}  # the audio stream, added once the video stream exists and before any packet
            options: dict[str, object] = {"crf": str(h264.crf), "preset": h264.preset}

            def add_audio() -> None:
                streams["sound"] = _add_audio(container, _aac_rate(audio.sample_rate))

            written = _encode_video(container, frames, rate, options, h264.threads, add_audio)
            if not written:
                raise RuntimeError("the decoder produced no frames")
            sound = streams["sound"]
            seconds = num_frames / float(rate)
            _mux_audio(container, sound, audio, round(seconds * audio.sample_rate))
        if written != num_frames:
            raise RuntimeError(f"wrote {written} frames, expected {num_frames}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode_video(
    container: av.container.OutputContainer,
    frames: Iterable[torch.Tensor | np.ndarray],
    rate: Fraction,
    options: dict[str, object],
    threads: int | None = None,
    first: Callable[[], None] | None = None,
) -> int:
    """Encode uint8 chunks (f, h, w, 3) as a new H.264 stream of ``container`` and flush it; ``first`` runs
    once the stream exists, before any packet. Returns the frame count (0: no stream was added)."""
    video, written = None, 0
    for chunk in frames:
        array = chunk if isinstance(chunk, np.ndarray) else chunk.to("cpu").numpy()
        if video is None:
            video = container.add_stream("libx264", rate=rate)
            video.height, video.width = array.shape[1], array.shape[2]
            video.pix_fmt = "yuv420p"
            video.options = options
            if threads is not None:
                video.codec_context.thread_count = threads
            if first is not None:
                first()
        for image in array:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            written += 1
    if video is not None:
        container.mux(video.encode())
    return written


def first_frames(chunks: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """The first ``count`` frames of uint8 chunks (f, h, w, 3): those a clip shows of the ones it rendered."""
    out = []
    for chunk in chunks:
        if count <= 0:
            break
        out.append(chunk[:count])
        count -= chunk.shape[0]
    return out


def write_segment(path: str | Path, frames: Iterable[torch.Tensor | np.ndarray], fps: float) -> int:
    """One window's frames as a video-only H.264 file, to be joined by :func:`join_segments`; written under a
    temporary name and renamed. No B-frames, so that segments join by copying packets, in order. Returns the
    frame count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            rate = Fraction(fps).limit_denominator(1001)
            written = _encode_video(container, frames, rate, {"crf": "18", "preset": "veryfast", "bf": "0"})
            if not written:
                raise RuntimeError("the window has no frames to write")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def join_segments(
    path: str | Path, segments: Sequence[str | Path], fps: float, audio: Callable[[int, int], AudioClip]
) -> int:
    """One mp4 from window segments (:func:`write_segment`), their packets copied in order, with the item's
    audio encoded once: ``audio(first_frame, frames)`` gives each segment's own stretch of it, so host memory
    holds one window's audio at a time. A stretch shorter than its frames is padded with silence, but for the
    last: the audio track ends where the item's audio does. Returns the frame count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    frames_so_far = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            video = sound = resampler = None
            samples_so_far = 0
            for index, segment in enumerate(segments):
                with av.open(str(segment)) as source:
                    stream = source.streams.video[0]
                    count = stream.frames  # the mp4 header's count, which write_segment wrote
                    clip = audio(frames_so_far, count)
                    if video is None or sound is None or resampler is None:  # every stream before the first packet
                        video = out.add_stream_from_template(stream)
                        video.time_base = stream.time_base
                        sound = _add_audio(out, _aac_rate(clip.sample_rate))
                        resampler = av.AudioResampler(
                            format=sound.codec_context.format, layout="stereo", rate=sound.rate
                        )
                    time_base = stream.time_base or Fraction(1, 90000)
                    shift = round(frames_so_far / fps / time_base)
                    for packet in source.demux(stream):
                        if packet.dts is None:
                            continue
                        packet.pts, packet.dts = (packet.pts or 0) + shift, packet.dts + shift
                        packet.stream, packet.time_base = video, time_base
                        out.mux(packet)
                end = round((frames_so_far + count) / fps * clip.sample_rate)
                want = end - samples_so_far
                samples = clip.samples[:, :want] if index == len(segments) - 1 else _exactly(clip.samples, want)
                if samples.shape[1]:
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="stereo")
                    frame.sample_rate, frame.pts = clip.sample_rate, samples_so_far
                    for chunk in resampler.resample(frame):
                        out.mux(sound.encode(chunk))
                samples_so_far, frames_so_far = end, frames_so_far + count
            if sound is None or resampler is None:
                raise RuntimeError("no segments to join")
            for chunk in resampler.resample(None):
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return frames_so_far


def _exactly(samples: np.ndarray, count: int) -> np.ndarray:
    """``count`` samples: cut, or padded with silence."""
    samples = samples[:, :count]
    if samples.shape[1] < count:
        samples = np.pad(samples, ((0, 0), (0, count - samples.shape[1])))
    return np.ascontiguousarray(samples, dtype=np.float32)


def _add_audio(container: av.container.OutputContainer, rate: int) -> av.audio.AudioStream:
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "stereo"
    stream.time_base = Fraction(1, rate)
    return stream


def _mux_audio(container, stream, audio: AudioClip, num_samples: int) -> None:
    samples = audio.samples[:, :num_samples]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout="stereo")
    frame.sample_rate = audio.sample_rate
    frame.pts = 0
    resampler = av.AudioResampler(format=stream.codec_context.format, layout="stereo", rate=stream.rate)
    for out in [*resampler.resample(frame), *resampler.resample(None)]:
        container.mux(stream.encode(out))
    container.mux(stream.encode())


@dataclass(frozen=True)
class VideoProbe:
    frames: int
    width: int
    height: int
    fps: float
    video_seconds: float
    audio_seconds: float
    audio_rate: int
    audio_channels: int


def probe_mp4(path: str | Path) -> VideoProbe:
    """Decode an mp4 fully and count what is really in it (not what the header claims)."""
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        frames = sum(1 for _ in container.decode(v))
        fps = float(v.average_rate or 0)
        width, height = v.codec_context.width, v.codec_context.height
    with av.open(str(path)) as container:
        a = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(a))
        rate, channels = a.rate, a.channels
    return VideoProbe(frames, width, height, fps, frames / fps, samples / rate, rate, channels)
