"""``frozen_audio_sigma``: what the transformer is told of the frozen audio's sigma in every forward of both
stages: 0 (``zero``, upstream 1.2.0) or the step's sigma (``step``, upstream 1.0.0, which test_parity matches)."""

from __future__ import annotations

from dataclasses import replace

import torch
from conftest import tiny_request

from ltxcore.request import RenderRequest


def _forwards(engine, request: RenderRequest) -> list[dict]:
    """The video and audio Modality of every transformer forward of one render."""
    calls: list[dict] = []

    def record(_module, _args, kwargs):
        calls.append({"video": kwargs["video"], "audio": kwargs["audio"]})

    hook = engine.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        engine.render(request, None)
    finally:
        hook.remove()
    return calls


def test_zero_gives_the_frozen_audio_sigma_0_in_every_forward_and_leaves_timesteps(engine, media):
    request = tiny_request(media["stereo_wav"], prompt="A presenter", num_inference_steps=3)
    zero = _forwards(engine, request)
    step = _forwards(engine, replace(request, frozen_audio_sigma="step"))
    assert request.frozen_audio_sigma == "zero"  # the default
    assert len(zero) == len(step) == 3 + 3  # three stage-1 steps, three stage-2 (distilled) steps
    for z, s in zip(zero, step, strict=True):
        assert torch.equal(z["audio"].sigma, torch.zeros_like(s["audio"].sigma))
        assert torch.equal(s["audio"].sigma, s["video"].sigma) and bool((s["audio"].sigma > 0).all())
        assert torch.equal(z["audio"].timesteps, s["audio"].timesteps)  # per token: 0, the audio is frozen
        assert not z["audio"].timesteps.any()
        assert torch.equal(z["video"].sigma, s["video"].sigma)
        assert torch.equal(z["video"].timesteps, s["video"].timesteps)  # the video is told its step either way
