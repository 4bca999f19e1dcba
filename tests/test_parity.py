"""Our engine against upstream 1.0.0's A2VidPipelineTwoStage on the same tiny bundle, inputs and seed (CPU).

1.0.0 gives the frozen audio the step's sigma, so these requests ask for ``frozen_audio_sigma="step"``."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_request
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_core.model.video_vae import TilingConfig
from ltx_pipelines.utils.args import ImageConditioningInput

from ltxcore.engine import DISTILLED
from ltxcore.media import decode_audio
from ltxcore.mp4 import probe_mp4
from ltxcore.request import ImageCondition, RenderRequest

_request = partial(  # frozen_audio_sigma "step": as upstream 1.0.0 tells the transformer
    tiny_request,
    prompt="A presenter speaks to the camera",
    seed=7,
    width=192,
    num_frames=17,
    frame_rate=25.0,
    num_inference_steps=4,
    frozen_audio_sigma="step",
)


@pytest.fixture()
def upstream_on_cpu(monkeypatch, tiny_bundle):
    """Upstream calls torch.cuda.synchronize unconditionally and sizes Gemma from a hard-coded 12B config;
    make both work on a CPU with the tiny root. Test-only patches."""
    import ltx_pipelines.a2vid_two_stage as a2vid
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    config = tiny_bundle.gemma_config()
    fake = SimpleNamespace(to_dict=lambda: config, text_config=SimpleNamespace(**config["text_config"]))
    monkeypatch.setattr(encoder_configurator, "GEMMA3_CONFIG_FOR_LTX", fake)
    captured = {}
    real_decode = a2vid.vae_decode_video

    def capture(latent, *args, **kwargs):
        captured["latent"] = latent.clone()
        return real_decode(latent, *args, **kwargs)

    monkeypatch.setattr(a2vid, "vae_decode_video", capture)
    pipeline = a2vid.A2VidPipelineTwoStage(
        checkpoint_path=tiny_bundle.checkpoint_path,
        distilled_lora=[LoraPathStrengthAndSDOps(tiny_bundle.distilled_lora, 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
        spatial_upsampler_path=tiny_bundle.spatial_upsampler_path,
        gemma_root=tiny_bundle.gemma_root,
        loras=[],
        device=torch.device("cpu"),
    )
    return pipeline, captured


def _run_upstream(pipeline, request: RenderRequest, images=()):
    video, audio = pipeline(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        seed=request.seed,
        height=request.height,
        width=request.width,
        num_frames=request.num_frames,
        frame_rate=request.frame_rate,
        num_inference_steps=request.num_inference_steps,
        video_guider_params=request.guider.to_upstream(),
        images=list(images),
        audio_path=request.audio,
        audio_start_time=request.audio_start_time,
        audio_max_duration=request.num_frames / request.frame_rate,
        tiling_config=TilingConfig.default(),
    )
    frames = torch.cat(list(video))
    return frames, audio


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _capture_stage_1(monkeypatch, into: list):
    import ltx_pipelines.a2vid_two_stage as a2vid

    import ltxcore.engine as engine_module

    real = a2vid.upsample_video

    def capture(latent, video_encoder, upsampler):
        into.append(latent.clone())
        return real(latent=latent, video_encoder=video_encoder, upsampler=upsampler)

    monkeypatch.setattr(a2vid, "upsample_video", capture)
    monkeypatch.setattr(engine_module, "upsample_video", capture)


def test_matches_upstream(upstream_on_cpu, engine, media, tmp_path, monkeypatch):
    """Stage 1 is bit-identical. Stage 2 differs only by upstream rounding its LoRA-fused weights to bf16."""
    pipeline, captured = upstream_on_cpu
    stage_1: list[torch.Tensor] = []
    _capture_stage_1(monkeypatch, stage_1)
    request = _request(media["stereo_wav"])
    frames, audio = _run_upstream(pipeline, request)

    result = engine.render(request, tmp_path / "ours.mp4", keep_latent=True)
    assert torch.equal(stage_1[1], stage_1[0])
    error = relative_error(result.video_latent, captured["latent"])
    print(f"final video latent relative error vs upstream: {error:.2e}")
    assert error < 1e-2

    probe = probe_mp4(tmp_path / "ours.mp4")
    assert (probe.frames, probe.height, probe.width) == tuple(frames.shape[:3])
    ours = decode_audio(request.audio, 0.0, request.num_frames / request.frame_rate)
    assert ours.sample_rate == audio.sampling_rate
    assert torch.equal(torch.from_numpy(ours.samples), audio.waveform.squeeze(0).float())


def test_matches_upstream_bitwise_without_lora(upstream_on_cpu, engine, media):
    """With the LoRA at strength 0 upstream fuses nothing, and the whole two-stage result is identical."""
    pipeline, captured = upstream_on_cpu
    pipeline.stage_2_model_ledger = pipeline.stage_1_model_ledger
    request = _request(media["stereo_wav"], distilled_lora_strength=0.0, image=media["image"])
    _run_upstream(pipeline, request, images=[ImageConditioningInput(request.image, 0, 1.0)])
    result = engine.render(request, None, keep_latent=True)
    assert torch.equal(result.video_latent, captured["latent"])


def test_several_images_match_upstream_bitwise(upstream_on_cpu, engine, media, tmp_path):
    """Frame 0 by latent index, a later frame as a keyframe, each at its strength: as upstream, to the bit."""
    import numpy as np
    from PIL import Image

    pipeline, captured = upstream_on_cpu
    pipeline.stage_2_model_ledger = pipeline.stage_1_model_ledger
    pose = tmp_path / "pose.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(pose)
    images = (ImageCondition(media["image"], 0, 1.0), ImageCondition(str(pose), 8, 0.6))
    request = _request(media["stereo_wav"], distilled_lora_strength=0.0, images=images, num_inference_steps=2)
    _run_upstream(pipeline, request, images=[ImageConditioningInput(i.path, i.frame, i.strength) for i in images])
    result = engine.render(request, None, keep_latent=True)
    assert torch.equal(result.video_latent, captured["latent"])


def test_runtime_lora_is_closer_to_exact_than_fused_bf16(engine):
    """Our adapter keeps base weights pristine; upstream's fused bf16 weight is one rounding further from exact."""
    layer = next(iter(engine.adapters.layers.values()))
    ranks = engine.adapters.ranks(DISTILLED)
    down, up = layer.down[ranks], layer.up[:, ranks]
    torch.manual_seed(0)
    x = torch.randn(4, 32, down.shape[1], dtype=torch.bfloat16)
    w = layer.base.weight.double()
    exact = x.double() @ (w + up.double() @ down.double()).T + layer.base.bias.double()
    fused = (up * 1.0) @ down
    fused = (fused + layer.base.weight).to(torch.bfloat16)
    upstream = torch.nn.functional.linear(x, fused, layer.base.bias)
    with engine.adapters.active({DISTILLED: 1.0}):
        ours = layer(x)
    assert relative_error(ours.double(), exact) <= relative_error(upstream.double(), exact)
    assert layer.lo == layer.hi  # switched off again after the block


def _run_upstream_distilled(pipeline, ledger, request: RenderRequest, images=()) -> torch.Tensor:
    """The distilled A2Vid recipe of upstream issue 309 (upstream 1.0.0 has no such pipeline), composed from
    upstream's own helpers as ``A2VidPipelineTwoStage`` composes the two-stage one: ``ledger`` holds the model
    (with the distilled LoRA fused in, for the recipe); stage 1 is ``denoise_video_only`` with the plain
    ``simple_denoising_func`` over ``DISTILLED_SIGMA_VALUES``; then the same upsample and stage 2. Returns the
    final video latent."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.model.upsampler import upsample_video
    from ltx_core.types import AudioLatentShape, VideoPixelShape
    from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES
    from ltx_pipelines.utils.helpers import (
        combined_image_conditionings,
        denoise_video_only,
        encode_prompts,
        simple_denoising_func,
    )
    from ltx_pipelines.utils.media_io import decode_audio_from_file
    from ltx_pipelines.utils.samplers import euler_denoising_loop

    cpu, dtype = torch.device("cpu"), torch.bfloat16
    noiser = GaussianNoiser(generator=torch.Generator(device=cpu).manual_seed(request.seed))
    (context,) = encode_prompts([request.prompt], ledger)  # no guider: no negative prompt
    seconds = request.num_frames / request.frame_rate
    audio = decode_audio_from_file(request.audio, cpu, request.audio_start_time, seconds)
    frames = AudioLatentShape.from_duration(batch=1, duration=seconds, channels=8, mel_bins=16).frames
    audio_latent = encode_audio(audio, ledger.audio_encoder())[:, :, :frames]
    transformer, video_encoder = ledger.transformer(), ledger.video_encoder()

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = simple_denoising_func(context.video_encoding, context.audio_encoding, transformer)
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    latent = None
    for scale, sigma_values in ((2, DISTILLED_SIGMA_VALUES), (1, STAGE_2_DISTILLED_SIGMA_VALUES)):
        shape = VideoPixelShape(1, request.num_frames, request.height // scale, request.width // scale, 25.0)
        conditions = combined_image_conditionings(list(images), shape.height, shape.width, video_encoder, dtype, cpu)
        sigmas = torch.Tensor(sigma_values)
        latent = denoise_video_only(
            output_shape=shape,
            conditionings=conditions,
            noiser=noiser,
            sigmas=sigmas,
            stepper=EulerDiffusionStep(),
            denoising_loop_fn=loop,
            components=pipeline.pipeline_components,
            dtype=dtype,
            device=cpu,
            noise_scale=1.0 if latent is None else sigmas[0],
            initial_video_latent=latent,
            initial_audio_latent=audio_latent,
        ).latent
        if scale == 2:
            latent = upsample_video(
                latent=latent[:1], video_encoder=video_encoder, upsampler=ledger.spatial_upsampler()
            )
    return latent


def test_distilled_matches_the_recipe_composed_from_upstream_helpers(upstream_on_cpu, engine, media):
    """A draft against the recipe on upstream's LoRA-fused ledger: they differ only by upstream rounding the
    fused weights to bf16, as the two-stage parity does in stage 2; here the LoRA is in both stages."""
    pipeline, _ = upstream_on_cpu
    request = _request(media["stereo_wav"], pipeline="distilled", image=media["image"], num_frames=9)
    images = [ImageConditioningInput(request.image, 0, 1.0)]
    reference = _run_upstream_distilled(pipeline, pipeline.stage_2_model_ledger, request, images)
    result = engine.render(request, None, keep_latent=True)
    error = relative_error(result.video_latent, reference)
    print(f"distilled final video latent relative error vs the upstream-helper recipe: {error:.2e}")
    assert error < 1e-2


def test_distilled_matches_the_recipe_bitwise_without_lora(upstream_on_cpu, engine, media):
    """At LoRA strength 0 nothing is fused: same sigmas, denoiser, noise stream and stages, so the same bits."""
    pipeline, _ = upstream_on_cpu
    request = _request(media["stereo_wav"], pipeline="distilled", distilled_lora_strength=0.0, num_frames=9)
    reference = _run_upstream_distilled(pipeline, pipeline.stage_1_model_ledger, request)
    assert torch.equal(engine.render(request, None, keep_latent=True).video_latent, reference)
