"""The mp4 encoder in a child process, fed raw frames through a pipe.

A worker's main thread feeds the GPU; an encoder thread beside it shares that thread's interpreter lock
for the Python half of every frame (frame objects, muxing calls) and its cores for x264's threads. In a
child process only the pipe write is left in the worker (the kernel copies; the lock is released), so the
next clip's launches never wait on the encode. The child runs the same ``write_mp4`` with the same
settings, so the file is the one the in-process path writes (``tests/test_mux_process.py``).

Protocol, one clip at a time: a JSON header line, the frames as raw uint8 (f, h, w, 3), the audio as raw
float32 (2, samples); the child answers one JSON line, ``{"seconds": s}`` or ``{"error": message}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltxcore.media import AudioClip
from ltxcore.mp4 import write_mp4, write_segment

if TYPE_CHECKING:  # the child never imports torch: its start-up is the first clip's mux time
    import torch

log = logging.getLogger(__name__)


class MuxProcess:
    """One encoder child, started on first use and restarted after it dies; a clip whose child died is
    encoded in this process instead, so a crash in the child costs time, never the clip."""

    def __init__(self):
        self.child: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def write(self, output: str | Path, frames: list[torch.Tensor], fps: float, clip: AudioClip, num_frames: int):
        """Write the mp4 as ``write_mp4`` does; returns the seconds taken."""
        start = time.perf_counter()
        arrays = [np.ascontiguousarray(chunk.numpy()) for chunk in frames]
        with self.lock:
            try:
                answer = self._send(output, arrays, fps, clip, num_frames)
            except (OSError, EOFError, ValueError) as e:  # the child is gone or spoke nonsense
                self.close()
                log.warning("the mp4 encoder process failed (%s); encoding %s in the worker instead", e, output)
                write_mp4(output, frames, fps, clip, num_frames)
                return time.perf_counter() - start
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return time.perf_counter() - start

    def write_segment(self, output: str | Path, frames: list[torch.Tensor], fps: float) -> float:
        """Write a long clip's window as ``write_segment`` does (video only); returns the seconds taken."""
        start = time.perf_counter()
        arrays = [np.ascontiguousarray(chunk.numpy()) for chunk in frames]
        with self.lock:
            try:
                answer = self._send(output, arrays, fps, None, sum(a.shape[0] for a in arrays))
            except (OSError, EOFError, ValueError) as e:
                self.close()
                log.warning("the mp4 encoder process failed (%s); encoding %s in the worker instead", e, output)
                write_segment(output, frames, fps)
                return time.perf_counter() - start
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return time.perf_counter() - start

    def _send(self, output, arrays: list[np.ndarray], fps: float, clip: AudioClip | None, num_frames: int) -> dict:
        """One clip to the child; ``clip`` None: a video-only window segment."""
        child = self._child()
        stdin, stdout = child.stdin, child.stdout
        assert stdin is not None and stdout is not None, "the child is started with pipes"
        samples = np.ascontiguousarray(clip.samples if clip else np.zeros((2, 0)), dtype=np.float32)
        shape = [sum(a.shape[0] for a in arrays), *arrays[0].shape[1:]] if arrays else [0, 0, 0, 3]
        header = {
            "output": str(output),
            "fps": fps,
            "num_frames": num_frames,
            "frames": shape,
            "samples": samples.shape[1],
            "sample_rate": clip.sample_rate if clip else 0,
            "padded_seconds": clip.padded_seconds if clip else 0.0,
            "segment": clip is None,
        }
        stdin.write(json.dumps(header).encode() + b"\n")
        for array in arrays:
            stdin.write(array.data.cast("B"))
        if samples.size:  # a segment has none
            stdin.write(samples.data.cast("B"))
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise EOFError(f"the encoder process ended (exit code {child.wait()})")
        return json.loads(line)

    def _child(self) -> subprocess.Popen:
        if self.child is None or self.child.poll() is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self.child = subprocess.Popen(
                [sys.executable, "-m", "ltxcore.mux_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
        return self.child

    def close(self) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            if child.stdin is not None:
                child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _read_exactly(stream, size: int) -> bytearray:
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        got = stream.readinto(view[done:])
        if not got:
            raise EOFError("the worker closed the pipe mid-clip")
        done += got
    return buffer


def serve(stdin, stdout) -> None:
    """The child's loop: one clip per header until the worker closes the pipe."""
    while line := stdin.readline():
        header = json.loads(line)
        frames, height, width, channels = header["frames"]
        pixels = np.frombuffer(_read_exactly(stdin, frames * height * width * channels), dtype=np.uint8)
        samples = np.frombuffer(_read_exactly(stdin, 2 * header["samples"] * 4), dtype=np.float32)
        clip = AudioClip(samples.reshape(2, -1), header["sample_rate"], header["padded_seconds"])
        chunks = [pixels.reshape(frames, height, width, channels)] if frames else []
        start = time.perf_counter()
        try:
            if header.get("segment"):
                write_segment(header["output"], chunks, header["fps"])
            else:
                write_mp4(header["output"], chunks, header["fps"], clip, header["num_frames"])
            answer = {"seconds": time.perf_counter() - start}
        except Exception as e:  # the worker turns it into the clip's error
            answer = {"error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the answers
    serve(sys.stdin.buffer, answers)
