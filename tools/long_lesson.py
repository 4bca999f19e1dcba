"""A lesson minutes long from the example's three recordings (English, German, Spanish), joined with
half-second pauses and repeated to the length asked: real speech with real pauses, for the long-form guide and
benchmark.

    python -m tools.long_lesson runs/lesson-75s.wav --seconds 75
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

from ltxcore.media import decode_audio

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "lesson"

RECORDINGS = ("en.ogg", "de.mp3", "es.m4a")
PAUSE_SECONDS = 0.5
RATE = 48000


def write_lesson(path: Path, seconds: float) -> Path:
    """The example's recordings with pauses between them, repeated to ``seconds``, as a stereo WAV."""
    pieces, total, gap = [], 0, np.zeros((2, int(PAUSE_SECONDS * RATE)), np.float32)
    while total < seconds * RATE:
        for name in RECORDINGS:
            clip = decode_audio(str(EXAMPLES / name), 0.0, None)
            samples = clip.samples if clip.sample_rate == RATE else _resample(clip.samples, clip.sample_rate)
            pieces += [samples, gap]
            total += samples.shape[1] + gap.shape[1]
    audio = np.concatenate(pieces, axis=1)[:, : int(seconds * RATE)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    positions = np.arange(int(samples.shape[1] * RATE / rate)) * rate / RATE
    return np.stack([np.interp(positions, np.arange(samples.shape[1]), channel) for channel in samples]).astype(
        np.float32
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the WAV file to write")
    parser.add_argument("--seconds", type=float, default=75.0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_lesson(args.out, args.seconds))


if __name__ == "__main__":
    main()
