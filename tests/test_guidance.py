"""Batched guidance against upstream 1.0.0's sequential multimodal guider, pass for pass (CPU, tiny transformer);
1.0.0 gives the frozen audio the step's sigma."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_request
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func

from ltxcore.audio_ahead import heard_audio
from ltxcore.engine import Engine
from ltxcore.guidance import GuidedDenoiser, guidance_passes


def _states(engine: Engine, media):
    """Real stage-1 states for a small clip, built the way the engine builds them: the audio the model hears,
    encoded by the bundle's audio VAE through upstream's ``encode_audio``."""
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.tools import AudioLatentTools, VideoLatentTools
    from ltx_core.types import Audio, AudioLatentShape, VideoLatentShape, VideoPixelShape

    request = engine.resolve(tiny_request(media["stereo_wav"], prompt="p", width=192, num_frames=17, frame_rate=25.0))
    _, heard = heard_audio(request)
    waveform = torch.from_numpy(heard.samples).unsqueeze(0)
    shape = VideoPixelShape(1, 17, 64, 96, 25.0)
    frames = AudioLatentShape.from_video_pixel_shape(shape).frames
    audio_latent = encode_audio(Audio(waveform=waveform, sampling_rate=heard.sample_rate), engine.audio_encoder)
    audio_latent = audio_latent[:, :, :frames]
    noiser = GaussianNoiser(torch.Generator().manual_seed(0))
    video_tools = VideoLatentTools(engine.video_patchifier, VideoLatentShape.from_pixel_shape(shape, 128), 25.0)
    video = noiser(video_tools.create_initial_state("cpu", torch.bfloat16), 1.0)
    audio_tools = AudioLatentTools(engine.audio_patchifier, AudioLatentShape.from_video_pixel_shape(shape))
    audio = audio_tools.create_initial_state("cpu", torch.bfloat16, audio_latent)
    audio = type(audio)(**{**audio.__dict__, "denoise_mask": torch.zeros_like(audio.denoise_mask)})
    return video, audio


@pytest.mark.parametrize(
    ("params", "passes"),
    [
        (dict(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1]), 4),
        (dict(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.0, modality_scale=1.0), 2),
        (dict(cfg_scale=1.0, stg_scale=1.0, modality_scale=2.0, stg_blocks=[0]), 3),
        (dict(cfg_scale=1.0, stg_scale=0.0, modality_scale=1.0), 1),
        (dict(cfg_scale=2.0, stg_scale=1.0, modality_scale=3.0, stg_blocks=[1], skip_step=1), 4),
    ],
)
@torch.inference_mode()
def test_batched_equals_sequential_and_off_passes_drop_out(engine, media, params, passes):
    video, audio = _states(engine, media)
    engine.warm_prompts([("p", "n")])
    positive, negative = engine.prompts.get(("p", "n"))
    guider = MultiModalGuider(params=MultiModalGuiderParams(**params), negative_context=negative.video)
    assert len(guidance_passes(guider)) == passes
    ours = GuidedDenoiser(engine.transformer, guider, positive.video, positive.audio, frozen_audio_sigma="step")
    reference = multi_modal_guider_denoising_func(
        guider, MultiModalGuider(params=MultiModalGuiderParams()), positive.video, positive.audio, engine.transformer
    )
    sigmas = torch.tensor([1.0, 0.7, 0.4, 0.0])
    for step in range(3):
        expected, _ = reference(video, audio, sigmas, step)
        got = ours(video, audio, sigmas[step], step)
        assert torch.equal(got, expected)  # the same numbers, not merely close
    skipped = params.get("skip_step", 0)
    assert ours.forwards == (2 if skipped else 3)  # a skipped step runs no forward at all
