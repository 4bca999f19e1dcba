"""The next item's audio read ahead (``ltxcore/audio_ahead.py``): the render takes the same clip it would have
read itself, and an item whose audio cannot be read still fails in its own render, naming the field."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_request

from ltxcore.audio_ahead import AudioAhead, heard_audio
from ltxcore.errors import RenderInputError


def test_the_audio_read_ahead_is_the_audio_read_at_render_time(engine, media):
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
    engine.read_ahead(request)
    assert engine.audio_ahead.pending
    read_ahead = engine.render(request, None, keep_latent=True)
    assert not engine.audio_ahead.pending
    assert torch.equal(plain.video_latent, read_ahead.video_latent)


def test_audio_that_cannot_be_read_fails_its_own_render_and_no_other(engine, media, tmp_path):
    missing = tiny_request(str(tmp_path / "gone.wav"))
    short = tiny_request(media["short_wav"], audio_start_time=5.0)  # starts after the file ends
    good = replace(tiny_request(media["stereo_wav"]), seed=8)
    for request in (missing, short, good):
        engine.read_ahead(request)  # never raises: the reading is the render's
    for request in (missing, short):
        with pytest.raises(RenderInputError) as told:
            engine.render(request, None)
        assert told.value.field == "audio" or "audio" in str(told.value)
    assert engine.render(good, None, keep_latent=True).video_latent is not None
    assert not engine.audio_ahead.pending
