"""Long clips as windows: boundaries inside the pauses of speech, frame arithmetic, validation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import write_tone

from ltxcore.pauses import energy_pauses, find_pauses
from ltxcore.shapes import FRAME_STEP
from ltxcore.windows import ROPE_MAX_SECONDS, WindowSettings, plan_windows, window_seed
from manifests.item import Item
from manifests.media_facts import MediaFacts
from manifests.windows import RENDERED_WINDOW, WINDOW_STRUCT, describe, item_windows

FPS = 24.0
PAUSES = [(3.0, 3.6), (6.4, 7.0), (9.1, 9.7), (12.5, 13.1)]  # seconds of silence in a 16 s "speech" signal


def speech_with_pauses(t: np.ndarray) -> np.ndarray:
    """Syllables (a 4 Hz-modulated voiced tone) everywhere except inside ``PAUSES``."""
    voiced = 0.4 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    silent = np.zeros_like(t, dtype=bool)
    for a, b in PAUSES:
        silent |= (t >= a) & (t < b)
    return np.where(silent, 0.0, voiced)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> str:
    return write_tone(tmp_path_factory.mktemp("lesson") / "lesson.wav", 16.0, signal=speech_with_pauses)


def test_energy_envelope_finds_the_known_pauses(lesson):
    found = find_pauses(lesson, 0.0, 16.0)
    assert found.detector == "energy"  # silero finds no speech in a modulated tone: the fallback decides
    assert len(found.spans) == len(PAUSES)
    for (a, b), (fa, fb) in zip(PAUSES, found.spans, strict=True):
        assert abs(fa - a) < 0.05 and abs(fb - b) < 0.05


@pytest.mark.parametrize("long_form", ["continuous", "cuts"])
def test_boundaries_fall_inside_the_pauses_and_frames_add_up(lesson, long_form):
    frames = 16 * 24 + 1
    settings = WindowSettings(window_seconds=4.0, context_frames=9, long_form=long_form)
    windows = plan_windows(frames, FPS, settings, find_pauses(lesson, 0.0, 16.0).spans)
    assert len(windows) > 1
    assert sum(w.frames for w in windows) == frames
    assert [w.start for w in windows] == [0, *np.cumsum([w.frames for w in windows])[:-1]]
    longest = settings.window_frames(FPS)
    for w in windows:
        assert (w.rendered - 1) % 8 == 0 and w.rendered <= longest
        assert w.context == (9 if long_form == "continuous" and w.index else 0)
        assert 0 <= w.rendered - (w.context + w.frames) < FRAME_STEP  # the frames rendered to reach 8k+1
    for w in windows[1:]:
        assert w.in_pause
        assert any(a <= w.start / FPS <= b for a, b in PAUSES), f"window {w.index} starts at {w.start / FPS:.2f} s"


def test_without_pauses_boundaries_go_inside_speech_and_say_so():
    windows = plan_windows(16 * 24 + 1, FPS, WindowSettings(4.0, 9), pauses=[])
    assert len(windows) == 5 and not any(w.in_pause for w in windows[1:])
    assert windows[0].frames == WindowSettings(4.0).window_frames(FPS)  # as long as a window allows


def test_one_window_clip_is_one_plain_window_at_the_next_valid_length():
    (window,) = plan_windows(97, FPS, WindowSettings())
    assert (window.start, window.frames, window.context, window.rendered) == (0, 97, 0, 97)  # 97 is 8k+1
    (window,) = plan_windows(53, FPS, WindowSettings())  # 2.2 s at 24 fps: shows 53, renders the next 8k+1
    assert (window.start, window.frames, window.context, window.rendered) == (0, 53, 0, 57)


def test_window_seeds_keep_the_items_seed_first():
    assert window_seed(42, 0) == 42
    assert len({window_seed(42, k) for k in range(50)}) == 50


def test_a_window_over_the_positional_range_is_an_error_naming_the_field():
    problems = WindowSettings(window_seconds=ROPE_MAX_SECONDS + 5).problems(FPS)
    assert problems[0][0] == "window_seconds" and "set window_seconds to 20 or less" in problems[0][1]
    assert WindowSettings(context_frames=10).problems(FPS)[0][0] == "context_frames"


def test_plan_lines_show_each_window_and_the_gpu_estimate(lesson):
    item = Item(id="l1", audio=lesson, prompt="p", window_seconds=4.0, context_frames=9, height=512, width=768)
    found = item_windows(item, 16 * 24 + 1, MediaFacts())
    lines = describe(item, found)
    assert lines[0].startswith("l1: 385 frames (16.0 s), ") and "GPU s" in lines[0]
    assert len(lines) == 1 + len(found.windows) and "starts in a pause" in lines[2]


def test_energy_pauses_ignore_short_dips():
    rate = 16000
    t = np.arange(rate * 2) / rate
    signal = np.sin(2 * np.pi * 200 * t)
    signal[rate // 2 : rate // 2 + 800] = 0  # 50 ms: a consonant, not a pause
    assert energy_pauses(signal, rate) == []


def test_boundaries_are_chosen_over_the_whole_clip_so_every_one_falls_in_a_pause():
    """Window by window, the first boundary would take the latest pause in reach (3.3-3.7 s), from where no pause
    is in reach of the next (6.9 s is past 3.375 + 3.33 s): a cut inside speech. Over the whole clip, the earlier
    pause (1.9-2.3 s) leads through 3.9-4.3 s to 6.9-7.3 s, every boundary in a pause."""
    pauses = [(1.9, 2.3), (3.3, 3.7), (3.9, 4.3), (6.9, 7.3)]
    windows = plan_windows(217, FPS, WindowSettings(4.0, 9), pauses)
    assert [w.start for w in windows] == [0, 49, 97, 169] and all(w.in_pause for w in windows)
    assert sum(w.frames for w in windows) == 217
    assert all(w.context + w.frames <= WindowSettings(4.0).window_frames(FPS) for w in windows)


# The window structs as plans and results were written before they were derived from the dataclasses.
PLANNED_WINDOW_AS_WRITTEN = pa.struct(
    [
        pa.field("index", pa.int64()),
        pa.field("start", pa.int64()),
        pa.field("frames", pa.int64()),
        pa.field("context", pa.int64()),
        pa.field("rendered", pa.int64()),
        pa.field("in_pause", pa.bool_()),
    ]
)
RENDERED_WINDOW_AS_WRITTEN = pa.struct(
    [
        pa.field("index", pa.int64()),
        pa.field("start_frame", pa.int64()),
        pa.field("num_frames", pa.int64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("seed", pa.int64()),
        pa.field("seconds", pa.float64()),
        pa.field("boundary_in_pause", pa.bool_()),
        pa.field("rendered_by", pa.string()),
    ]
)


def test_the_window_structs_derived_from_the_dataclasses_are_the_ones_runs_were_written_with():
    """Plans and results of earlier runs still read: the same names, types and order, field for field."""
    assert list(WINDOW_STRUCT) == list(PLANNED_WINDOW_AS_WRITTEN)
    assert list(RENDERED_WINDOW) == list(RENDERED_WINDOW_AS_WRITTEN)
