"""A synthetic talking face with known lip sync, to check the quality scores (and to see real numbers when the
demo's random model draws no faces).

The face is the astronaut photograph scikit-image ships in its wheel (Eileen Collins, public domain). Its
landmarks are found, and frame by frame its lower lip (and chin) is pulled down in proportion to a
speech-like loudness envelope; the clip is muxed with a voice-like sound following that envelope. With
``--shift-frames N`` the sound comes N frames late (early when negative); ``--audio-seed`` gives the clip an
unrelated sound; ``--noise-frame T`` replaces frame T by noise.

    python tools/talking_clip.py clip.mp4 --reference presenter.png       # 768x512, 97 frames at 25 fps
    ltx-batch score clip.mp4 --reference presenter.png

Needs the extra of the chosen face models (``quality.face``; ``qa`` by default) for the landmarks and
scikit-image for the photograph; both are in ``dev``.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from quality.measures import eye_distance

AUDIO_RATE = 16000
FACE_HEIGHT = 0.34  # the face box's share of the frame height: a presenter framed from the chest up
MAX_OPENING = 0.3  # the lower lip's largest drop, in eye distances (a wide-open "a")


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def speech_envelope(seconds: float, seed: int) -> np.ndarray:
    """Loudness at ``AUDIO_RATE`` in 0..1: syllables of 0.10-0.28 s with short gaps and the odd pause."""
    rng = np.random.default_rng(seed)
    envelope = np.zeros(round(seconds * AUDIO_RATE))
    t = 0.12
    while t < seconds:
        length = rng.uniform(0.10, 0.28)
        start, stop = round(t * AUDIO_RATE), min(envelope.size, round((t + length) * AUDIO_RATE))
        envelope[start:stop] = rng.uniform(0.5, 1.0) * np.sin(np.linspace(0, np.pi, stop - start)) ** 2
        t += length + (rng.uniform(0.25, 0.45) if rng.random() < 0.15 else rng.uniform(0.03, 0.12))
    return envelope


def voice(envelope: np.ndarray, seed: int) -> np.ndarray:
    """A voiced buzz (120 Hz with harmonics and a slow vibrato) shaped by ``envelope``, plus a little noise."""
    t = np.arange(envelope.size) / AUDIO_RATE
    phase = 2 * np.pi * np.cumsum(120 + 8 * np.sin(2 * np.pi * 0.7 * t)) / AUDIO_RATE
    buzz = sum(np.sin(k * phase) / k for k in range(1, 7))
    noise = np.random.default_rng(seed + 1).normal(0, 0.003, envelope.size)
    return (0.5 * envelope * buzz / np.abs(buzz).max() + noise).astype(np.float32)


def per_frame(envelope: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """The envelope's mean during each video frame, scaled to 0..1."""
    edges = np.round(np.arange(frames + 1) / fps * AUDIO_RATE).astype(int)
    means = np.array([envelope[a:b].mean() if b > a else 0.0 for a, b in zip(edges, edges[1:], strict=False)])
    return means / max(means.max(), 1e-9)


def framed(image: np.ndarray, face, width: int, height: int) -> np.ndarray:
    """``image`` scaled so the face box is ``FACE_HEIGHT`` of the frame, cropped around it (edges repeated)."""
    left, top, right, bottom = face
    scale = FACE_HEIGHT * height / (bottom - top)
    big = np.asarray(Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale))))
    cx, cy = (left + right) / 2 * scale, (top + bottom) / 2 * scale + 0.1 * height
    x0, y0 = round(cx - width / 2), round(cy - height / 2)
    rows = np.clip(np.arange(y0, y0 + height), 0, big.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + width), 0, big.shape[1] - 1)
    return np.ascontiguousarray(big[rows][:, cols])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def open_mouth(image: np.ndarray, landmarks: np.ndarray, layout, drop: float) -> np.ndarray:
    """``image`` with the lower lip and chin pulled down by ``drop`` pixels: rows between the upper inner lip
    and the lower lip's bottom stretch, rows below down to the chin close up again (no fold: the ramp is
    longer than the largest drop)."""
    if drop <= 0:
        return image.copy()
    right_corner, left_corner = landmarks[list(layout.mouth_corners)]
    cx = landmarks[list(layout.lips), 0].mean()
    half_width = (left_corner[0] - right_corner[0]) / 2
    upper = np.mean([landmarks[up, 1] for up, _ in layout.inner_lip_pairs])
    lower, chin = landmarks[layout.lower_lip_bottom, 1], landmarks[layout.chin, 1] + 0.3 * half_width
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    across = np.exp(-0.5 * ((xs - cx) / (0.9 * half_width)) ** 2)
    down = _smoothstep((ys - upper) / (lower - upper)) * (1 - _smoothstep((ys - lower) / (chin - lower)))
    source = np.clip(ys - drop * across * down, 0, image.shape[0] - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, image.shape[0] - 1)
    weight = (source - low)[..., None]
    cols = xs.astype(int)
    return np.round(image[low, cols] * (1 - weight) + image[high, cols] * weight).astype(np.uint8)


def delayed(sound: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """``sound`` starting ``frames`` video frames late (early when negative), at the same length."""
    shift = round(frames / fps * AUDIO_RATE)
    if shift >= 0:
        return np.concatenate([np.zeros(shift, np.float32), sound])[: sound.size]
    return np.concatenate([sound[-shift:], np.zeros(-shift, np.float32)])


def write_clip(path: str | Path, frames: list[np.ndarray], fps: float, sound: np.ndarray) -> None:
    """H.264 + AAC, as the renderer writes them."""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "mono"
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        frame = av.AudioFrame.from_ndarray(sound[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, 0
        resampler = av.AudioResampler(format=audio.codec_context.format, layout="mono", rate=AUDIO_RATE)
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(audio.encode(out))
        container.mux(audio.encode())


def talking_frames(image: np.ndarray, opening: np.ndarray, width: int, height: int) -> tuple[list, np.ndarray]:
    """One frame per value of ``opening`` (0..1) and the still frame they were made from."""
    from quality.score_clip import face_model

    model = face_model()
    face = model.detect(np.asarray(Image.fromarray(image).convert("L")))
    if face is None:
        raise ValueError("no face found in the photograph")
    still = framed(image, face, width, height)
    gray = np.asarray(Image.fromarray(still).convert("L"))
    box = model.detect(gray)
    if box is None:
        raise ValueError("no face found in the framed photograph")
    landmarks = model.landmarks(gray, box)
    eyes = float(eye_distance(landmarks[None], model.layout)[0])
    return [open_mouth(still, landmarks, model.layout, MAX_OPENING * eyes * o) for o in opening], still


def make_clip(
    path: str | Path,
    width: int = 768,
    height: int = 512,
    frames: int = 97,
    fps: float = 25.0,
    shift_frames: int = 0,
    seed: int = 0,
    audio_seed: int | None = None,
    noise_frame: int | None = None,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Write the clip; return the still frame (the presenter image a render would have started from)."""
    seconds = frames / fps
    envelope = speech_envelope(seconds, seed)
    pictures, still = talking_frames(
        astronaut() if image is None else image, per_frame(envelope, fps, frames), width, height
    )
    heard = envelope if audio_seed is None else speech_envelope(seconds, audio_seed)
    sound = delayed(voice(heard, seed), shift_frames, fps)
    if noise_frame is not None:
        pictures[noise_frame] = np.random.default_rng(seed).integers(0, 256, still.shape, dtype=np.uint8)
    write_clip(path, pictures, fps, sound)
    return still


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("out", help="the mp4 to write")
    parser.add_argument("--size", default="768x512", help="WIDTHxHEIGHT (default 768x512)")
    parser.add_argument("--frames", type=int, default=97)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--shift-frames", type=int, default=0, help="the sound comes this many frames late")
    parser.add_argument("--seed", type=int, default=0, help="the speech rhythm")
    parser.add_argument("--audio-seed", type=int, help="give the clip the sound of another rhythm (unrelated)")
    parser.add_argument("--noise-frame", type=int, help="replace this frame by noise")
    parser.add_argument("--reference", help="also write the still frame here (a PNG: the item's image)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    for path in (args.out, args.reference):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    still = make_clip(
        args.out, width, height, args.frames, args.fps, args.shift_frames, args.seed, args.audio_seed, args.noise_frame
    )
    if args.reference:
        Image.fromarray(still).save(args.reference)
    print(f"wrote {args.out}" + (f" and {args.reference}" if args.reference else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
