"""Read a clip for scoring: every video frame (decoded once) and the audio as mono samples on the video's clock."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

LUMA_FIRST = ("yuv420p", "yuvj420p", "yuv422p", "yuv444p")  # 8-bit formats whose first plane is the luma


@dataclass(frozen=True)
class Clip:
    frames: list[av.VideoFrame]  # decoded; converted to arrays on demand (gray for most, RGB for a few)
    fps: float
    audio: np.ndarray | None  # mono float32, sample 0 at the first video frame's time; None without audio
    rate: int

    def gray(self, index: int) -> np.ndarray:
        """The luma plane (read as it is for YUV frames: no conversion)."""
        frame = self.frames[index]
        if frame.format.name not in LUMA_FIRST:
            return frame.to_ndarray(format="gray")
        plane = frame.planes[0]
        flat = np.frombuffer(plane, np.uint8)  # pyright: ignore[reportCallIssue, reportArgumentType]  # av's stubs omit VideoPlane's buffer protocol
        rows = flat.reshape(frame.height, plane.line_size)
        return np.ascontiguousarray(rows[:, : frame.width])

    def rgb(self, index: int) -> np.ndarray:
        return self.frames[index].to_ndarray(format="rgb24")


def read_clip(path: str) -> Clip:
    """Decode ``path``. The audio is placed by its timestamps, so an encoder's priming delay does not read as
    a lip-sync offset."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = list(container.decode(stream))
    if not frames:
        raise ValueError(f"{path} has no video frames")
    start = frames[0].time or 0.0
    audio, rate = _read_audio(path, start)
    return Clip(frames, fps, audio, rate)


def _read_audio(path: str, start: float) -> tuple[np.ndarray | None, int]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, 0
        stream = container.streams.audio[0]
        rate = stream.rate
        pieces, first = [], None
        for frame in container.decode(stream):
            if first is None:
                first = frame.time if frame.time is not None else start
            pieces.append(_mono(frame))
    if not pieces or first is None:
        return None, rate
    samples = np.concatenate(pieces)
    lead = round((first - start) * rate)  # > 0: the audio starts after the first frame
    samples = np.pad(samples, (lead, 0)) if lead > 0 else samples[-lead:]
    return samples, rate


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """The frame's channels averaged (planar formats come as (channels, n), packed ones interleaved)."""
    data = frame.to_ndarray().astype(np.float32)
    channels = len(frame.layout.channels)
    data = data.reshape(channels, -1) if frame.format.is_planar else data.reshape(-1, channels).T
    return data.mean(axis=0)
