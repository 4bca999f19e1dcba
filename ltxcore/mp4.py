"""Mp4 out: H.264 and AAC muxed with PyAV, a clip at once or window segments joined, and a probe that counts
what an mp4 really holds. The audio comes in through ``ltxcore.media``.
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
import numpy as np

from ltxcore.media import AudioClip

if TYPE_CHECKING:  # the mux child needs no torch; a worker writes torch tensors
    import torch

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


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
