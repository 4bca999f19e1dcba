"""The mp4 encoder in a child process writes the file the in-process encoder writes, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import torch

from ltxcore.media import AudioClip, decode_audio
from ltxcore.mp4 import write_mp4
from ltxcore.mux_process import MuxProcess


def _frames(count: int = 9, height: int = 64, width: int = 96) -> list[torch.Tensor]:
    """Two chunks (as the tiled decoder yields them) of a moving gradient with noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    images = [((x + 3 * i + y) % 256 + rng.integers(0, 30, (height, width))) % 256 for i in range(count)]
    video = np.stack([np.stack([im, im[::-1], 255 - im], axis=-1) for im in images]).astype(np.uint8)
    return [torch.from_numpy(video[:5]), torch.from_numpy(video[5:])]


def _clip(media) -> AudioClip:
    return decode_audio(media["stereo_wav"], 0.0, 9 / 25)


def _decoded(path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as container:
        video = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return video, audio


def test_child_process_writes_the_same_mp4_as_the_worker(tmp_path, media):
    frames, clip = _frames(), _clip(media)
    write_mp4(tmp_path / "plain.mp4", frames, 25.0, clip, 9)
    encoder = MuxProcess()
    try:
        seconds = encoder.write(tmp_path / "child.mp4", frames, 25.0, clip, 9)
        encoder.write(tmp_path / "again.mp4", frames, 25.0, clip, 9)  # one child serves clip after clip
    finally:
        encoder.close()
    assert seconds > 0
    plain, child = _decoded(tmp_path / "plain.mp4"), _decoded(tmp_path / "child.mp4")
    assert np.array_equal(plain[0], child[0]) and np.array_equal(plain[1], child[1])
    assert plain[0].shape == (9, 64, 96, 3)
    assert (tmp_path / "plain.mp4").read_bytes() == (tmp_path / "child.mp4").read_bytes()
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "child.mp4").read_bytes()


def test_an_encode_error_in_the_child_is_the_clips_error(tmp_path, media):
    encoder = MuxProcess()
    try:
        try:
            encoder.write(tmp_path / "short.mp4", _frames(), 25.0, _clip(media), 12)  # 9 frames, 12 promised
            raise AssertionError("a clip with missing frames was written")
        except RuntimeError as e:
            assert "wrote 9 frames, expected 12" in str(e)
        assert not (tmp_path / "short.mp4").exists()
        encoder.write(tmp_path / "next.mp4", _frames(), 25.0, _clip(media), 9)  # the child lives on
        assert (tmp_path / "next.mp4").exists()
    finally:
        encoder.close()


def test_a_dead_child_is_replaced_for_the_next_clip(tmp_path, media):
    encoder = MuxProcess()
    try:
        encoder._child().kill()
        encoder.child.wait()  # pyright: ignore[reportOptionalMemberAccess]
        encoder.write(tmp_path / "fallback.mp4", _frames(), 25.0, _clip(media), 9)
        write_mp4(tmp_path / "plain.mp4", _frames(), 25.0, _clip(media), 9)
        assert (tmp_path / "fallback.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
    finally:
        encoder.close()


def test_the_child_imports_no_torch():
    """Every Ray worker starts its own child, so torch's import would be every worker's first-clip mux time."""
    code = "import sys, ltxcore.mux_process\nprint('torch' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert done.stdout.strip() == "False"
