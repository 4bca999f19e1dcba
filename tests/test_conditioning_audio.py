"""Conditioning-audio options: the model hears noise at the asked level and/or the asked loudness; the mp4
keeps the original audio, packet for packet."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from conftest import tiny_request

from ltxcore.conditioning_audio import conditioning_clip, integrated_loudness, rms
from ltxcore.errors import RenderInputError
from ltxcore.media import decode_audio
from ltxcore.request import RenderRequest
from manifests.item import Item
from runstore.plan import fingerprint


def _db(ratio: float) -> float:
    return 20 * np.log10(ratio)


def _band_power(samples: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples, axis=1)) ** 2
    freqs = np.fft.rfftfreq(samples.shape[1], 1 / rate)
    return float(spectrum[:, (freqs >= low) & (freqs < high)].sum())


def test_pink_noise_at_the_requested_snr_seeded_by_the_item_seed(media):
    clip = decode_audio(media["stereo_wav"], 0.0, 1.5)
    heard = conditioning_clip(clip, seed=7, noise_db=-20)
    noise = heard.samples.astype(np.float64) - clip.samples
    assert abs(_db(rms(clip.samples) / rms(noise)) - 20) < 0.5
    # pink: equal power per octave (white noise would have 10x more in the higher octave)
    octave_low, octave_high = (_band_power(noise, clip.sample_rate, f, 2 * f) for f in (200, 2000))
    assert abs(10 * np.log10(octave_high / octave_low)) < 1.5
    assert np.array_equal(conditioning_clip(clip, seed=7, noise_db=-20).samples, heard.samples)
    assert not np.array_equal(conditioning_clip(clip, seed=8, noise_db=-20).samples, heard.samples)
    assert conditioning_clip(clip, seed=7) is clip  # both off: the file's audio, untouched


def test_noise_level_is_relative_to_the_speech_not_the_padding(media):
    clip = decode_audio(media["short_wav"]).padded_to(1.0)  # 0.5 s of tone, 0.5 s of silence
    assert clip.padded_seconds == pytest.approx(0.5, abs=1e-3)
    noise = conditioning_clip(clip, seed=1, noise_db=-30).samples.astype(np.float64) - clip.samples
    speech = clip.samples[:, : int(0.5 * clip.sample_rate)]
    assert abs(_db(rms(speech) / rms(noise)) - 30) < 0.5


def test_loudness_is_normalised_and_keeps_the_noise_level(media):
    clip = decode_audio(media["stereo_wav"], 0.0, 1.5)
    for target in (-16.0, -30.0):
        heard = conditioning_clip(clip, seed=3, loudness_lufs=target)
        assert abs(integrated_loudness(heard.samples.astype(np.float64), clip.sample_rate) - target) < 0.5
    both = conditioning_clip(clip, seed=3, noise_db=-25, loudness_lufs=-23)
    noisy = conditioning_clip(clip, seed=3, noise_db=-25).samples.astype(np.float64)
    assert abs(integrated_loudness(both.samples.astype(np.float64), clip.sample_rate) + 23) < 0.5
    gain = both.samples[0, 100] / noisy[0, 100]
    assert np.allclose(both.samples, noisy * gain, rtol=1e-5, atol=1e-6)  # one gain: the SNR is kept


def test_options_are_range_checked_and_short_clips_cannot_be_measured(media):
    request = RenderRequest(audio=media["stereo_wav"], prompt="p", audio_conditioning_noise_db=6)
    assert [(e.field, e.message) for e in request.problems()] == [
        ("audio_conditioning_noise_db", "must be between -80 and 0, got 6.")
    ]
    with pytest.raises(RenderInputError, match="at least 0.4 s of audio"):
        conditioning_clip(decode_audio(media["stereo_wav"], 0.0, 0.3), seed=1, loudness_lufs=-23)


def test_options_enter_the_fingerprint_only_when_set(media):
    item = Item(id="a", audio=media["stereo_wav"], prompt="p", seed=1, num_frames=17)
    values = item.values
    before_the_options = {k: v for k, v in values.items() if not k.startswith("audio_conditioning_")}
    assert fingerprint(values, {}, None) == fingerprint(before_the_options, {}, None)
    noisy = item.model_copy(update={"audio_conditioning_noise_db": -30}).values
    assert fingerprint(noisy, {}, None) != fingerprint(values, {}, None)


def _audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_the_model_hears_the_options_and_the_mp4_keeps_the_original(engine, media, tmp_path):
    base = tiny_request(
        media["stereo_wav"], prompt="A teacher explains fractions", seed=3, width=192, num_frames=17, frame_rate=25.0
    )
    plain = engine.render(base, tmp_path / "plain.mp4", keep_latent=True)
    options = {"audio_conditioning_noise_db": -20.0, "audio_conditioning_loudness_lufs": -16.0}
    treated = engine.render(replace(base, **options), tmp_path / "treated.mp4", keep_latent=True)
    assert not torch.equal(plain.video_latent, treated.video_latent)  # the model was conditioned on other audio
    packets = _audio_packets(tmp_path / "plain.mp4")
    assert packets and _audio_packets(tmp_path / "treated.mp4") == packets
