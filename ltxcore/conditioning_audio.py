"""The audio the model is conditioned on, when an item asks for it to differ from the file: pink noise mixed
in, and/or the loudness normalised. Only what the model hears changes; the mp4 carries the original audio.

Why noise: users of LTX-2.x audio-to-video report that lips barely move on clean synthetic (TTS) speech,
and that a little noise in the conditioning audio brings the motion back while the clean audio stays in the
final file (ComfyUI-LTXVideo issue 438, Wan2GP issue 1764, WhatDreamsCost-ComfyUI issue 30). Both options
are off unless an item sets them, and with both off the conditioning audio is the file's, untouched.
"""

from __future__ import annotations

import math

import numpy as np

from ltxcore.errors import RenderInputError
from ltxcore.media import AudioClip

NOISE_DB_RANGE = (-80.0, 0.0)  # noise at or below the speech's level: louder would drown it
LOUDNESS_LUFS_RANGE = (-60.0, 0.0)
LOUDNESS_BLOCK_SECONDS = 0.4  # ITU-R BS.1770 gating block: shorter audio has no integrated loudness


def problems(noise_db: float | None, loudness_lufs: float | None) -> list[RenderInputError]:
    """Range checks of the two options (None is off; their types are the item model's to check)."""
    out = []
    for name, value, (low, high) in (
        ("audio_conditioning_noise_db", noise_db, NOISE_DB_RANGE),
        ("audio_conditioning_loudness_lufs", loudness_lufs, LOUDNESS_LUFS_RANGE),
    ):
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            out.append(RenderInputError(name, f"must be between {low:g} and {high:g}, got {value!r}."))
    return out


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def pink_noise(channels: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f (white noise shaped by 1/sqrt(f) in the frequency domain), RMS 1."""
    bins = samples // 2 + 1
    spectrum = rng.standard_normal((channels, bins)) + 1j * rng.standard_normal((channels, bins))
    shape = np.zeros(bins)
    shape[1:] = 1 / np.sqrt(np.arange(1, bins))  # no DC
    noise = np.fft.irfft(spectrum * shape, n=samples)
    level = rms(noise)
    return noise / level if level > 0 else noise


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770 integrated loudness in LUFS of (channels, samples) audio (pyloudnorm's meter)."""
    import pyloudnorm  # scipy: only where loudness is asked for

    with np.errstate(divide="ignore"):  # silence measures -inf
        return pyloudnorm.Meter(sample_rate).integrated_loudness(samples.T)


def conditioning_clip(
    clip: AudioClip, seed: int, noise_db: float | None = None, loudness_lufs: float | None = None
) -> AudioClip:
    """``clip`` as the model should hear it. Noise first, at ``noise_db`` relative to the RMS of the audio
    itself (the silence a short file is padded with not counted), seeded by ``seed``; then the mix is scaled to
    ``loudness_lufs``, which keeps the noise's level relative to the speech. Samples are not clipped: the audio
    encoder takes any float, and clipping would change the loudness. With both off, ``clip`` is returned."""
    if noise_db is None and loudness_lufs is None:
        return clip
    samples = clip.samples.astype(np.float64)
    if noise_db is not None:
        speech = samples[:, : samples.shape[1] - round(clip.padded_seconds * clip.sample_rate)]
        noise = pink_noise(samples.shape[0], samples.shape[1], np.random.default_rng(seed))
        samples = samples + noise * rms(speech) * 10 ** (noise_db / 20)
    if loudness_lufs is not None:
        if samples.shape[1] < LOUDNESS_BLOCK_SECONDS * clip.sample_rate:
            raise RenderInputError(
                "audio_conditioning_loudness_lufs",
                f"needs at least {LOUDNESS_BLOCK_SECONDS} s of audio to measure loudness; the clip has "
                f"{samples.shape[1] / clip.sample_rate:.2f} s. Leave it out for clips this short.",
            )
        measured = integrated_loudness(samples, clip.sample_rate)
        if math.isfinite(measured):  # silence stays silence
            samples = samples * 10 ** ((loudness_lufs - measured) / 20)
    return AudioClip(samples.astype(np.float32), clip.sample_rate, clip.padded_seconds)
