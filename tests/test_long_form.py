"""Long clips rendered window by window on the tiny bundle: one-window items exactly as before, continuity
conditioning, a stitched mp4 whose lengths match its audio, resume from the last finished window."""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import tiny_request, write_tone

from ltxcore.long_form import WindowFolder, render_windows, window_request
from ltxcore.mp4 import probe_mp4
from ltxcore.windows import plan_windows, window_seed

FPS = 24.0


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> str:
    return write_tone(tmp_path_factory.mktemp("long") / "three.wav", 3.0)


def _long_request(audio: str, long_form: str = "continuous"):
    return tiny_request(audio, num_frames=65, frame_rate=FPS, window_seconds=1.5, context_frames=1, long_form=long_form)


def _windows(request):
    return tuple(plan_windows(request.frames, FPS, request.window_settings))


def test_one_window_item_renders_bit_identical_to_the_plain_path(engine, audio, tmp_path):
    request = tiny_request(audio, num_frames=17, frame_rate=FPS)
    (window,) = _windows(request)
    result = render_windows(engine, request, (window,), tmp_path / "windowed.mp4")
    engine.render(request, tmp_path / "plain.mp4")
    assert _sha(tmp_path / "windowed.mp4") == _sha(tmp_path / "plain.mp4")
    assert [w.seed for w in result.windows] == [request.seed]


def test_next_window_is_conditioned_on_the_previous_windows_last_frames(engine, audio, tmp_path):
    request = _long_request(audio)
    windows = _windows(request)
    assert [(w.start, w.frames, w.context, w.rendered) for w in windows] == [(0, 33, 0, 33), (33, 32, 1, 33)]
    folder = WindowFolder(tmp_path / "chain")
    render_windows(engine, request, windows, tmp_path / "out.mp4", folder, only={0})
    context = folder.context(0)
    assert context is not None and context.shape == (1, 128, 128, 3)  # window 0's last frame
    second = window_request(request, windows[1])
    assert (second.audio_start_time, second.num_frames, second.seed) == (32 / FPS, 33, window_seed(request.seed, 1))
    result, _ = engine.render_window(second, context)
    expected = engine.context_latent(context, 128, 128)  # (1, 128, 1, 4, 4): one frame is one latent frame
    assert expected.shape[2] == 1
    assert result.video_latent is not None
    assert torch.equal(result.video_latent[:, :, :1], expected)  # held clean through both stages
    assert not torch.equal(result.video_latent[:, :, 1:2], expected)


def test_stitched_mp4_matches_its_audio_and_a_resumed_chain_renders_only_the_missing_windows(engine, audio, tmp_path):
    request = _long_request(audio)
    windows = _windows(request)
    whole = render_windows(engine, request, windows, tmp_path / "whole.mp4", WindowFolder(tmp_path / "a"))
    probe = probe_mp4(tmp_path / "whole.mp4")
    assert probe.frames == 65 and probe.fps == FPS
    slack = max(1 / FPS, 1024 / probe.audio_rate)  # a frame, or the AAC frame the encoder pads the end to
    assert abs(probe.audio_seconds - 65 / FPS) <= slack and abs(probe.video_seconds - probe.audio_seconds) <= slack
    assert [w.index for w in whole.windows] == [0, 1] and len({w.seed for w in whole.windows}) == 2

    folder = WindowFolder(tmp_path / "b")  # a worker lost after window 1: its folder holds window 0 only
    partial = render_windows(engine, request, windows, tmp_path / "resumed.mp4", folder, only={0})
    assert partial.output is None and not (tmp_path / "resumed.mp4").exists()
    first = (folder.path / "window-0000.json").stat().st_mtime_ns
    resumed = render_windows(engine, request, windows, tmp_path / "resumed.mp4", folder)
    assert (folder.path / "window-0000.json").stat().st_mtime_ns == first  # not rendered again
    assert resumed.windows[0] == partial.windows[0]
    assert _sha(tmp_path / "resumed.mp4") == _sha(tmp_path / "whole.mp4")


def test_cuts_windows_render_apart_and_join_once_all_are_there(engine, audio, tmp_path):
    request = _long_request(audio, "cuts")
    windows = _windows(request)
    assert [(w.start, w.frames, w.context, w.rendered) for w in windows] == [(0, 33, 0, 33), (33, 32, 0, 33)]
    folder = WindowFolder(tmp_path / "cuts")
    assert render_windows(engine, request, windows, tmp_path / "c.mp4", folder, only={1}).output is None
    assert render_windows(engine, request, windows, tmp_path / "c.mp4", folder, only={0}).output is None
    joined = (folder.path / "window-0000.json").stat().st_mtime_ns
    done = render_windows(engine, request, windows, tmp_path / "c.mp4", folder)  # joins, renders nothing more
    assert (folder.path / "window-0000.json").stat().st_mtime_ns == joined
    assert done.output is not None and probe_mp4(tmp_path / "c.mp4").frames == 65
    assert [w.index for w in done.windows] == [0, 1]
