"""The next item's audio read ahead (``ltxcore/audio_ahead.py``): the render takes the same clip it would have
read itself, waits only for its own read, and an item whose audio cannot be read still fails in its own render
with the error it has without the read-ahead."""

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_request

from ltxcore.audio_ahead import AudioAhead, heard_audio
from ltxcore.errors import RenderInputError


def test_the_audio_read_ahead_is_taken_by_the_render_of_that_request(engine, media):
    request = tiny_request(
        media["stereo_wav"], audio_start_time=0.25, audio_conditioning_noise_db=-20.0, seed=11, num_frames=17
    )
    ahead = AudioAhead(engine.resolve)
    ahead.ahead(request)
    clip, heard = ahead.get(engine.resolve(request))
    assert not ahead.pending  # taken from the read-ahead, not read again
    plain_clip, plain_heard = heard_audio(engine.resolve(request))
    assert np.array_equal(clip.samples, plain_clip.samples) and np.array_equal(heard.samples, plain_heard.samples)
    assert (clip.sample_rate, clip.padded_seconds) == (plain_clip.sample_rate, plain_clip.padded_seconds)


def test_a_render_after_its_audio_was_read_ahead_is_bit_identical(engine, media):
    request = tiny_request(media["stereo_wav"], audio_conditioning_noise_db=-20.0, seed=4)
    plain = engine.render(request, None, keep_latent=True)
    engine.audio_ahead.ahead(request)
    assert engine.audio_ahead.pending
    read_ahead = engine.render(request, None, keep_latent=True)
    assert not engine.audio_ahead.pending
    assert torch.equal(plain.video_latent, read_ahead.video_latent)


def test_a_render_never_waits_for_another_items_read(engine, media):
    slow, released = replace(tiny_request(media["stereo_wav"]), seed=1), threading.Event()

    def resolve(request):
        if request.seed == slow.seed:
            released.wait(30)  # the next item's audio, still being read
        return engine.resolve(request)

    ahead = AudioAhead(resolve)
    ahead.ahead(slow)
    started = time.monotonic()
    ahead.get(engine.resolve(replace(slow, seed=2)))  # this item: nothing read ahead
    assert time.monotonic() - started < 10 and len(ahead.pending) == 1
    released.set()


def test_audio_that_cannot_be_read_fails_its_own_render_as_without_the_read_ahead(engine, media, tmp_path):
    too_short = tiny_request(media["stereo_wav"], num_frames=9, audio_conditioning_loudness_lufs=-16.0)  # 0.36 s
    missing = tiny_request(str(tmp_path / "gone.wav"))
    for request in (too_short, missing):
        with pytest.raises(RenderInputError) as plain:
            engine.render(request, None)
        engine.audio_ahead.ahead(request)  # never raises: the error is the render's
        with pytest.raises(RenderInputError) as read_ahead:
            engine.render(request, None)
        assert (read_ahead.value.field, str(read_ahead.value)) == (plain.value.field, str(plain.value))
    assert plain.value.field == "audio"
    good = replace(tiny_request(media["stereo_wav"]), seed=8)
    engine.audio_ahead.ahead(good)
    assert engine.render(good, None, keep_latent=True).video_latent is not None
    # the good read was taken; the missing file's render failed before asking for its read, which is dropped
    # once newer reads push it out (two are kept)
    assert [key[0] for key, _ in engine.audio_ahead.pending] == [missing.audio]
