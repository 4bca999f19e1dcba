"""Speech pauses of an audio window, where long clips place their window boundaries (``ltxcore/windows.py``).

Silero VAD finds the speech; its model ships inside the ``silero-vad`` wheel (a TorchScript file), so nothing
is downloaded. The pauses are the gaps between its speech segments. When the VAD finds no speech in audio that is
not silent (music, synthetic tones, a voice it does not know), the audio's energy envelope decides instead:
a pause is a stretch whose loudness stays well below the window's loud parts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ltxcore.media import decode_audio

VAD_RATE = 16000  # silero's rate
MIN_PAUSE_SECONDS = 0.12
HOP_SECONDS = 0.02
QUIET_DB = -26.0  # below the loud parts (95th percentile of 20 ms RMS) by this much: a pause
SILENT_RMS = 1e-4


@dataclass(frozen=True)
class Pauses:
    spans: list[tuple[float, float]]  # (start, end) seconds from the window's start
    detector: str  # "vad" or "energy"


def find_pauses(audio: str, start: float, seconds: float) -> Pauses:
    """Pauses in ``seconds`` of ``audio`` from ``start``."""
    mono16 = decode_audio(audio, start, seconds, rate=VAD_RATE, mono=True).samples[0]  # 38 MB for 10 minutes
    duration = len(mono16) / VAD_RATE
    speech = vad_speech(mono16)
    if speech or _rms(mono16) < SILENT_RMS:
        return Pauses(_gaps(speech, duration), "vad")
    return Pauses(energy_pauses(mono16, VAD_RATE), "energy")


def vad_speech(mono16: np.ndarray) -> list[tuple[float, float]]:
    """Silero's speech segments, in seconds."""
    import torch
    from silero_vad import get_speech_timestamps

    with torch.inference_mode():
        found = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(mono16)), _model(), return_seconds=True)
    return [(float(s["start"]), float(s["end"])) for s in found]


_loaded = threading.local()  # silero keeps state between the chunks of one search: one model per thread


def _model():
    if not hasattr(_loaded, "model"):
        from silero_vad import load_silero_vad

        _loaded.model = load_silero_vad()
    return _loaded.model


def energy_pauses(mono: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """Stretches at least ``MIN_PAUSE_SECONDS`` long whose 20 ms RMS stays ``QUIET_DB`` below the loud parts."""
    hop = max(1, round(HOP_SECONDS * rate))
    count = len(mono) // hop
    if count == 0:
        return []
    rms = np.sqrt(np.mean(mono[: count * hop].reshape(count, hop) ** 2, axis=1))
    loud = float(np.percentile(rms, 95))
    quiet = rms < max(loud * 10 ** (QUIET_DB / 20), SILENT_RMS)
    spans, run_start = [], None
    for i, q in enumerate([*quiet, False]):
        if q and run_start is None:
            run_start = i
        elif not q and run_start is not None:
            if (i - run_start) * HOP_SECONDS >= MIN_PAUSE_SECONDS:
                spans.append((run_start * hop / rate, i * hop / rate))
            run_start = None
    return spans


def _gaps(speech: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    edges = [0.0, *[t for segment in speech for t in segment], duration]
    pairs = zip(edges[::2], edges[1::2], strict=True)
    return [(a, b) for a, b in pairs if b - a >= MIN_PAUSE_SECONDS]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
