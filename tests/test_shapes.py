"""Any length (``ltxcore/shapes.py``): every clip and window of a mixed manifest shows the frames that cover its
audio and renders at the next valid length, the workers warm one request per graph set (not per length), a clip
whose length is valid renders bit-identically to a plain render of that length, and every mp4 carries its item's
whole audio under video that covers it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_request, write_tone

from ltxcore.long_form import render_windows
from ltxcore.media import decode_audio
from ltxcore.shapes import FRAME_STEP, frames_for_duration
from manifests.clip_checks import clip_frames
from manifests.load import load_manifest
from manifests.validate import plan_lines
from ray_jobs.render import warm_requests
from runstore.plan import plan

FPS = 25.0
AAC_FRAME = 1024  # samples: AAC codes audio in frames of this many


def _manifest(tmp_path: Path, items: list[dict], **defaults) -> Path:
    fixed = {"prompt": "A presenter", "frame_rate": FPS, "video_stg_blocks": [1]}  # the tiny model's blocks: 0, 1
    body = {"run_seed": 1, "defaults": {**fixed, **defaults}, "items": items}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_every_length_of_a_mixed_manifest_shows_its_audio_and_warms_one_graph_set(tmp_path, engine):
    seconds = {"a": 2.1, "b": 3.0, "c": 3.9, "d": 5.5, "e": 13.0}
    items = [{"id": k, "audio": write_tone(tmp_path / f"{k}.wav", s)} for k, s in seconds.items()]
    items += [{"id": "f", "audio": items[-1]["audio"], "long_form": "cuts", "pipeline": "distilled"}]
    manifest = load_manifest(_manifest(tmp_path, items))
    planned = {p.id: p for p in plan(manifest)}
    # shown: the fewest frames that cover the audio; rendered: the next 8k+1 (2.1 s: 52.5 frames -> 53 -> 57)
    one_window = {k: (p.item.num_frames, p.window_plan[0].rendered) for k, p in planned.items() if k in "abcd"}
    assert one_window == {"a": (53, 57), "b": (75, 81), "c": (98, 105), "d": (138, 145)}
    # 13 s shows 325 frames: a tone has no pause, so window 0 shows the longest, 249; window 1 the other 76,
    # after 17 context frames (continuous: 93 -> 97) or with one more frame (cuts: 77 -> 81)
    assert [(w.frames, w.rendered) for w in planned["e"].window_plan] == [(249, 249), (76, 97)]
    assert [(w.frames, w.rendered) for w in planned["f"].window_plan] == [(249, 249), (76, 81)]
    used = {(p.item.pipeline, w.rendered) for p in planned.values() for w in p.window_plan}
    assert {length for _, length in used} == {57, 81, 97, 105, 145, 249}
    for p in planned.values():
        window = seconds.get(p.id, seconds["e"])
        assert (p.item.num_frames - 1) / FPS < window <= p.item.num_frames / FPS  # the whole audio, within a frame
        windows = p.window_plan
        assert sum(w.frames for w in windows) == p.item.num_frames
        assert all(0 <= w.rendered - w.context - w.frames < FRAME_STEP for w in windows)
    # validation, the plan, the engine and the workers' warm-up use the same numbers
    lines = "\n".join(plan_lines(manifest, verbose=True))
    assert "a: 53 frames (2.1 s), 1 window(s) rendered at 57 frames" in lines
    for p in planned.values():
        unresolved = p.item.model_copy(update={"num_frames": None})
        resolved = engine.resolve(unresolved.to_request())
        assert clip_frames(unresolved, seconds.get(p.id, 13.0)) == resolved.frames == p.item.num_frames
        if len(p.window_plan) == 1:
            assert resolved.render_frames == p.window_plan[0].rendered
    # one warm-up per graph set (pipeline, size, LoRAs) at its most rendered length: compiled graphs serve them all
    warm = warm_requests(list(planned.values()))
    assert [(r.pipeline, r.num_frames) for r in warm] == [("two-stage", 57), ("distilled", 249)]  # ties: the first
    assert all(r.render_frames == r.num_frames for r in warm)


def test_a_clip_whose_frames_are_valid_renders_bit_identically_to_a_plain_render(engine, media, tmp_path):
    """The exact claim: 1.0 s of audio at 25 fps shows 25 frames, a valid length, so nothing is added and the derived
    request renders as the plain one with ``num_frames=25`` (the engine's dtype, bf16, on the CPU)."""
    derived = tiny_request(media["stereo_wav"], num_frames=None, frame_rate=FPS, audio_max_duration=1.0)
    plain = tiny_request(media["stereo_wav"], num_frames=25, frame_rate=FPS)
    assert engine.resolve(derived).frames == engine.resolve(derived).render_frames == 25 == plain.render_frames
    ours = engine.render(derived, tmp_path / "derived.mp4", keep_latent=True)
    before = engine.render(plain, tmp_path / "plain.mp4", keep_latent=True)
    assert ours.video_latent is not None and before.video_latent is not None
    assert ours.video_latent.shape[2] == (25 - 1) // 8 + 1  # latent frames: no frame rendered past the 25
    assert torch.equal(ours.video_latent, before.video_latent)
    assert np.array_equal(_video(tmp_path / "derived.mp4"), _video(tmp_path / "plain.mp4"))


def _video(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def _audio_track(path: Path) -> tuple[int, np.ndarray, int]:
    """The samples the mp4's header counts (its packets' durations), the decoded samples, and the rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        counted = int(stream.duration or 0)  # time base 1/rate: one unit a sample
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
        return counted, decoded, stream.rate


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, engine) -> tuple[dict, dict]:
    """A mixed manifest with 1 s windows (rungs 1, 9, 17, 25) rendered as a worker renders it: audio at three
    rates, a window shorter than its file, and a long item in two windows. Item id -> (plan, mp4)."""
    folder = tmp_path_factory.mktemp("mixed")
    items = [
        {"id": "file-ends", "audio": write_tone(folder / "a.wav", 0.3)},  # 7.5 frames: shows 8, renders 9
        {"id": "window", "audio": write_tone(folder / "b.wav", 2.0, rate=44100), "audio_max_duration": 0.62},
        {"id": "rate-48k", "audio": write_tone(folder / "c.wav", 0.9, rate=48000)},  # 22.5: shows 23, renders 25
        {"id": "long", "audio": write_tone(folder / "d.wav", 1.7)},  # 42.5: shows 43 in two windows
    ]
    fast = {"height": 128, "width": 128, "num_inference_steps": 2}
    manifest = _manifest(folder, items, window_seconds=1.0, context_frames=1, **fast)
    out = {}
    for p in plan(load_manifest(manifest)):
        output = folder / f"{p.id}.mp4"
        render_windows(engine, p.item.to_request(), p.window_plan, output)
        out[p.id] = (p, output)
    return {i["id"]: i for i in items}, out


def test_every_mp4_of_a_mixed_manifest_carries_its_whole_audio_under_video_that_covers_it(mixed_run):
    """The header counts exactly the audio window's samples; decoding gives them and the rest of the last AAC
    frame (a decoder returns whole frames), so the decoded length is within one AAC frame above the window."""
    items, rendered = mixed_run
    assert {p.window_plan[-1].rendered for p, _ in rendered.values()} <= {9, 17, 25}
    assert len(rendered["long"][0].window_plan) == 2
    for item_id, (planned, path) in rendered.items():
        item = items[item_id]
        source = decode_audio(item["audio"])
        window = min(source.duration, item.get("audio_max_duration", source.duration))
        counted, decoded, rate = _audio_track(path)
        samples = round(window * rate)
        assert rate == source.sample_rate and counted == samples, item_id
        assert samples <= decoded.shape[1] < samples + AAC_FRAME, item_id
        tail = slice(samples - rate // 100, samples)  # its last 10 ms are there: nothing cut
        assert 0.5 < np.sqrt(np.mean(decoded[0, tail] ** 2) / np.mean(source.samples[0, tail] ** 2)) < 2, item_id
        frames = _video(path).shape[0]
        assert frames == planned.item.num_frames == frames_for_duration(window, FPS), item_id
        assert 0 <= frames / FPS - window < 1 / FPS, item_id  # the video covers the audio within one frame


def test_a_users_num_frames_is_what_is_shown_rendered_at_its_rung(engine, media, tmp_path):
    request = tiny_request(media["stereo_wav"], num_frames=12, frame_rate=FPS)  # 0.48 s shown, rendered as 17
    assert engine.resolve(request).render_frames == 17
    result = engine.render(request, tmp_path / "twelve.mp4")
    counted, _, rate = _audio_track(tmp_path / "twelve.mp4")
    assert result.num_frames == _video(tmp_path / "twelve.mp4").shape[0] == 12
    assert counted == round(12 / FPS * rate)  # the file goes on: its audio is cut where the video ends
