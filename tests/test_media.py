"""Audio decoding over the codecs users send, and the frames that cover an audio window."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sweep, write_tone

from ltxcore.media import decode_audio, probe_audio
from ltxcore.shapes import frames_for_duration


@pytest.mark.parametrize(
    ("suffix", "codec", "rate"),
    [
        ("wav", "pcm_s16le", 16000),
        ("wav", "pcm_s24le", 44100),
        ("wav", "pcm_f32le", 48000),
        ("mp3", "mp3", 44100),
        ("m4a", "aac", 48000),
        ("ogg", "libopus", 48000),
        ("ogg", "vorbis", 44100),
        ("flac", "flac", 16000),
    ],
)
def test_decodes_every_supported_codec(tmp_path, suffix, codec, rate):
    channels = 2 if codec == "vorbis" else 1  # ffmpeg's own vorbis encoder writes stereo only
    path = write_tone(tmp_path / f"voice.{suffix}", 1.5, rate=rate, channels=channels, codec=codec, signal=sweep)
    info = probe_audio(path)
    clip = decode_audio(path, 0.25, 1.0)
    assert info.duration == pytest.approx(1.5, abs=0.1)
    assert clip.samples.shape == (2, rate)
    expected = sweep(0.25 + np.arange(rate) / rate)  # the window starts 0.25 s into the recording
    assert np.sqrt(np.mean((clip.samples[0] - expected) ** 2)) < 0.05  # lossy codecs: ~0.015; 1 ms late: ~0.2
    assert np.array_equal(clip.samples[0], clip.samples[1])
    assert 0.05 < np.abs(clip.samples).max() <= 1.0
    assert clip.padded_seconds == 0.0


@pytest.mark.parametrize(("suffix", "codec"), [("mp3", "mp3"), ("m4a", "aac"), ("ogg", "libopus"), ("flac", "flac")])
def test_window_far_into_the_file_starts_on_time(tmp_path, suffix, codec):
    """Past a seek: mp3 streams start at the encoder delay and need the frames before the target decoded."""
    path = write_tone(tmp_path / f"voice.{suffix}", 2.5, rate=48000, channels=1, codec=codec, signal=sweep)
    clip = decode_audio(path, 1.6, 0.5)
    expected = sweep(1.6 + np.arange(24000) / 48000)
    assert np.sqrt(np.mean((clip.samples[0] - expected) ** 2)) < 0.05
    assert clip.padded_seconds == 0.0


def test_window_past_the_end_is_padded_with_silence(tmp_path):
    path = write_tone(tmp_path / "short.wav", 1.0)
    clip = decode_audio(path, 0.5, 1.0)
    assert clip.padded_seconds == pytest.approx(0.5, abs=1e-3)
    assert np.all(clip.samples[:, 8000 + 10 :] == 0)


@pytest.mark.parametrize(("seconds", "fps", "frames"), [(2.0, 25, 50), (3.88, 25, 97), (0.3, 25, 8), (5.01, 24, 121)])
def test_frames_for_duration_are_the_fewest_that_cover_the_audio(seconds, fps, frames):
    assert frames_for_duration(seconds, fps) == frames
    assert (frames - 1) / fps < seconds <= frames / fps + 1e-9  # 3.88 s at 25 fps is 97 frames whole, not 98
