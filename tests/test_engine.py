"""The resident engine on the tiny bundle: mp4 output, no state leaking between items, input handling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

import pytest
import torch
from conftest import tiny_request
from torch.utils.hooks import RemovableHandle

from ltxcore.engine import DISTILLED, Engine
from ltxcore.errors import RenderInputError
from ltxcore.mp4 import probe_mp4
from ltxcore.request import GuiderSettings

# as long as the audio allows (num_frames None) unless a test says
_request = partial(
    tiny_request,
    prompt="A teacher explains fractions",
    seed=3,
    width=192,
    num_frames=None,
    frame_rate=25.0,
    num_inference_steps=3,
)


def test_renders_mp4_with_exact_frames_size_fps_and_audio(engine, media, tmp_path):
    result = engine.render(_request(media["stereo_wav"], audio_max_duration=1.9), tmp_path / "clip.mp4")
    probe = probe_mp4(tmp_path / "clip.mp4")
    assert result.num_frames == 48  # the fewest frames that cover 1.9 s at 25 fps (rendered as 49)
    assert (probe.frames, probe.width, probe.height, probe.fps) == (48, 192, 128, 25.0)
    assert 0 <= probe.audio_seconds - 1.9 < 1024 / probe.audio_rate  # the whole window, to one AAC frame
    assert probe.audio_channels == 2
    assert {"text_encode", "audio_encode", "stage_1", "upsample", "stage_2", "decode", "mux"} <= set(result.timings)
    assert not list(tmp_path.glob(".*partial"))


def test_same_request_twice_is_identical_with_other_items_between(engine, media):
    request = _request(media["stereo_wav"], num_frames=17)
    first = engine.render(request, None, keep_latent=True)
    other = _request(media["mono_wav"], num_frames=9, seed=99, prompt="Another prompt", distilled_lora_strength=0.5)
    engine.render(replace(other, image=media["image"]), None)
    engine.render(replace(request, guider=GuiderSettings(stg_blocks=(0,), skip_step=1)), None)
    again = engine.render(request, None, keep_latent=True)
    assert torch.equal(first.video_latent, again.video_latent)
    assert not engine.adapters.strengths and all(layer.lo == layer.hi for layer in engine.adapters.layers.values())


@contextmanager
def _gemma_forwards(engine: Engine) -> Iterator[list[None]]:
    """One entry per forward of the engine's text encoder (Gemma), seen at its token embedding: every forward,
    encoding or generating, embeds its tokens there first."""
    calls: list[None] = []
    embedding = engine.text_encoder.model.get_input_embeddings()
    hook = embedding.register_forward_hook(lambda *_: calls.append(None))
    try:
        yield calls
    finally:
        hook.remove()


def test_prompt_pairs_are_encoded_once(engine, media):
    """A shard's prompts are encoded before its first item; neither encoding them again nor the item's render
    runs the text encoder a second time."""
    request = _request(media["stereo_wav"], prompt="A prompt encoded once", num_frames=9, num_inference_steps=2)
    with _gemma_forwards(engine) as forwards:
        engine.prepare_prompts([request])
        encoded = len(forwards)
        engine.prepare_prompts([request])
        engine.render(request, None)
    assert encoded > 0 and len(forwards) == encoded


def test_mono_audio_is_duplicated_to_stereo(engine, media, tmp_path):
    engine.render(_request(media["mono_wav"], num_frames=17), tmp_path / "mono.mp4")
    assert probe_mp4(tmp_path / "mono.mp4").audio_channels == 2


def test_short_audio_is_reported_and_the_mp4_ends_its_audio_where_the_file_does(engine, media, tmp_path):
    result = engine.render(_request(media["short_wav"], num_frames=25), tmp_path / "short.mp4")
    assert result.audio_padded_seconds == pytest.approx(1.0 - 0.5, abs=1e-3)
    probe = probe_mp4(tmp_path / "short.mp4")
    assert probe.frames == 25
    assert 0 <= probe.audio_seconds - 0.5 < 1024 / probe.audio_rate  # no silence added: a player plays none


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"guider": GuiderSettings(stg_blocks=(28,))}, "stg_blocks"),
        ({"audio_start_time": 30.0}, "audio_start_time"),
        ({"image": "/nonexistent/face.png"}, "image"),
        ({"audio": "/nonexistent/voice.wav"}, "audio"),
    ],
)
def test_what_needs_the_model_or_the_media_fails_in_the_engine_naming_the_field(engine, media, overrides, field):
    with pytest.raises(RenderInputError) as caught:
        engine.render(_request(**{"audio": media["stereo_wav"], **overrides}), None)
    assert caught.value.field == field


def test_the_requests_own_rules_are_all_reported_at_once_before_any_model(media):
    guider = GuiderSettings(cfg_scale=float("nan"), stg_blocks=(1,))
    request = _request(media["stereo_wav"], num_frames=0, height=100, guider=guider, audio_start_time=-1.0)
    fields = [problem.field for problem in request.problems()]
    assert fields == ["height", "num_frames", "audio_start_time", "cfg_scale"]


def test_audio_that_is_not_audio_is_refused(engine, tmp_path):
    fake = tmp_path / "voice.wav"
    fake.write_bytes(b"this is not a wav file at all" * 10)
    with pytest.raises(RenderInputError) as caught:
        engine.render(_request(str(fake)), None)
    assert caught.value.field == "audio"


def test_window_shorter_than_the_video_is_silence_not_more_of_the_file(engine, media, tmp_path):
    result = engine.render(_request(media["stereo_wav"], num_frames=25, audio_max_duration=0.5), tmp_path / "w.mp4")
    assert result.audio_padded_seconds == pytest.approx(0.5, abs=1e-3)


def _record_transformer_calls(engine: Engine) -> tuple[list[tuple], RemovableHandle]:
    """What each transformer forward sees: token and context shapes (their first axis is the batch of
    guidance passes), the per-sample perturbations and the LoRA strength in effect."""
    calls: list[tuple] = []

    def record(_module, _args, kwargs):
        video, audio, perturbations = kwargs["video"], kwargs["audio"], kwargs["perturbations"]
        configs = [] if perturbations is None else perturbations.perturbations
        per_sample = tuple(tuple((p.type, tuple(p.blocks or ())) for p in c.perturbations or ()) for c in configs)
        lora = frozenset(engine.adapters.strengths.items())
        tensors = (video.latent, video.positions, video.context, audio.latent, audio.positions, audio.context)
        calls.append((tuple(tuple(t.shape) for t in tensors), perturbations is None, per_sample, lora))

    return calls, engine.transformer.register_forward_pre_hook(record, with_kwargs=True)


def test_warm_up_runs_both_stage_shapes_and_leaves_no_trace(engine, media):
    request = _request(media["stereo_wav"], num_frames=17, num_inference_steps=2, distilled_lora_strength=0.75)
    calls, hook = _record_transformer_calls(engine)
    try:
        before = engine.render(request, None, keep_latent=True).video_latent
        rendered = list(dict.fromkeys(calls))  # distinct calls in order: stage 1, then stage 2
        calls.clear()
        assert engine.warm_up(request) > 0
        warmed = list(calls)
    finally:
        hook.remove()
    assert len(rendered) == 2 and warmed == rendered
    (stage_1, unperturbed_1, perturbed, lora_1), (stage_2, unperturbed_2, _, lora_2) = warmed
    passes = len(perturbed)
    assert passes >= 3 and not unperturbed_1 and unperturbed_2  # stage 1 batches cond, uncond and STG passes
    assert [s[0] for s in stage_1] == [passes] * 6 and [s[0] for s in stage_2] == [1] * 6
    assert stage_2[0][1] == 4 * stage_1[0][1]  # stage 2 has twice the height and width in latent tokens
    assert (lora_1, lora_2) == (frozenset(), frozenset({(DISTILLED, 0.75)}))
    assert all(layer.lo == layer.hi for layer in engine.adapters.layers.values())
    assert torch.equal(engine.render(request, None, keep_latent=True).video_latent, before)
