"""Batched multimodal guidance: all guidance passes of a step in one transformer forward.

Upstream runs conditional, unconditional, STG-perturbed and modality-isolated passes one after another.
Here they are stacked on the batch axis and told apart by upstream's ``BatchedPerturbationConfig``;
passes that a setting switches off (scale 0 or 1) drop out of the batch, and a skipped step runs none.
The STG pass has the conditional pass's inputs and differs from it only from its first perturbed block
on, so it declares that prefix as shared (:class:`~ltxcore.blocks.SharedPrefix`) and the block loop
computes it once. The audio latent is frozen in this pipeline, so only the video prediction is guided.

What the model is told of the frozen audio's sigma is a setting (``frozen_audio_sigma``): ``zero``, as upstream
1.2.0 (its prompt AdaLN and the cross-modality gates then see frozen conditioning), or ``step``, the step's
sigma, as upstream 1.0.0. The audio's per-token timesteps are its zero denoise mask times sigma, 0 either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from ltx_core.components.guiders import MultiModalGuider
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import Modality, X0Model
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, LatentState, VideoLatentShape, VideoPixelShape

from ltxcore.blocks import SharedPrefix, SharingPerturbations

ISOLATE_MODALITY = (
    Perturbation(type=PerturbationType.SKIP_A2V_CROSS_ATTN, blocks=None),
    Perturbation(type=PerturbationType.SKIP_V2A_CROSS_ATTN, blocks=None),
)


@dataclass(frozen=True)
class GuidancePass:
    name: str  # cond | uncond | perturbed | isolated
    negative_context: bool
    perturbations: tuple[Perturbation, ...]


def guidance_passes(guider: MultiModalGuider) -> list[GuidancePass]:
    """The passes this guider needs, conditional first and STG-perturbed last (its rows join the batch late,
    and rows that keep their place in the batch keep their numbers on every backend)."""
    passes = [GuidancePass("cond", False, ())]
    if guider.do_unconditional_generation():
        passes.append(GuidancePass("uncond", True, ()))
    if guider.do_isolated_modality_generation():
        passes.append(GuidancePass("isolated", False, ISOLATE_MODALITY))
    if guider.do_perturbed_generation():
        stg = Perturbation(type=PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks=list(guider.params.stg_blocks or ()))
        passes.append(GuidancePass("perturbed", False, (stg,)))
    return passes


def batched_perturbations(passes: list[GuidancePass], share_prefix: bool = True) -> BatchedPerturbationConfig:
    """Upstream's per-sample perturbation config for one batched forward over ``passes``; with
    ``share_prefix``, the STG pass is declared equal to the conditional pass before its first STG block."""
    rows = [PerturbationConfig(list(p.perturbations)) for p in passes]
    names = [p.name for p in passes]
    if not share_prefix or "perturbed" not in names:
        return BatchedPerturbationConfig(rows)
    (stg,) = passes[names.index("perturbed")].perturbations
    first = 0 if stg.blocks is None else min(stg.blocks, default=0)  # 0: nothing to share
    shared = SharedPrefix(source=names.index("cond"), copy=names.index("perturbed"), until=first)
    return SharingPerturbations(rows, shared=(shared,))


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t if n == 1 else t.repeat(n, *([1] * (t.ndim - 1)))


def modality(state: LatentState, context: torch.Tensor, sigma: torch.Tensor, batch: int) -> Modality:
    """Upstream ``Modality`` for ``batch`` copies of one latent state (timesteps = sigma * denoise mask)."""
    return Modality(
        latent=_repeat(state.latent, batch),
        sigma=sigma.reshape(1).repeat(batch),
        timesteps=_repeat(state.denoise_mask * sigma, batch),
        positions=_repeat(state.positions, batch),
        context=context,
        attention_mask=None if state.attention_mask is None else _repeat(state.attention_mask, batch),
    )


CONTEXT_TOKENS = 1024  # every prompt is padded to this many tokens


def synthetic_inputs(transformer: X0Model, shape: VideoPixelShape, batch: int) -> tuple[Modality, Modality]:
    """Random inputs of exactly a clip's shapes for ``transformer`` (an X0Model), on its device: for warm-up
    compiles and for benchmarks, where timing does not depend on the values."""
    model = transformer.velocity_model
    device = next(model.parameters()).device
    video_tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape.from_pixel_shape(shape, 128), shape.fps)
    video = video_tools.create_initial_state(device, torch.bfloat16)
    video = replace(video, latent=torch.randn_like(video.latent))
    audio_tools = AudioLatentTools(AudioPatchifier(1), AudioLatentShape.from_video_pixel_shape(shape))
    audio = audio_tools.create_initial_state(device, torch.bfloat16)
    sigma = torch.tensor(0.7, device=device)
    contexts = [
        torch.randn(batch, CONTEXT_TOKENS, dim, device=device, dtype=torch.bfloat16)
        for dim in (model.inner_dim, model.audio_inner_dim)
    ]
    return modality(video, contexts[0], sigma, batch), modality(audio, contexts[1], sigma, batch)


def frozen_sigma(sigma: torch.Tensor, setting: str) -> torch.Tensor:
    """The sigma the model is given for a frozen modality under ``setting`` (``zero`` or ``step``)."""
    return torch.zeros_like(sigma) if setting == "zero" else sigma


class GuidedDenoiser:
    """Stage-1 denoiser: one batched forward per step, then upstream's guider combines the passes."""

    def __init__(
        self,
        transformer: torch.nn.Module,
        guider: MultiModalGuider,
        video_context: torch.Tensor,
        audio_context: torch.Tensor,
        frozen_audio_sigma: str = "zero",
    ):
        self.transformer = transformer
        self.frozen_audio_sigma = frozen_audio_sigma
        self.guider = guider
        self.passes = guidance_passes(guider)
        negative = guider.negative_context
        if negative is None and any(p.negative_context for p in self.passes):
            raise ValueError("the unconditional guidance pass needs the negative prompt's context")
        contexts = [negative if p.negative_context and negative is not None else video_context for p in self.passes]
        self.video_context = torch.cat(contexts, dim=0)
        self.audio_context = _repeat(audio_context, len(self.passes))
        self.perturbations = batched_perturbations(self.passes)
        self.last: torch.Tensor | None = None
        self.forwards = 0

    def __call__(self, video: LatentState, audio: LatentState, sigma: torch.Tensor, step: int) -> torch.Tensor:
        if self.guider.should_skip_step(step):
            assert self.last is not None, "upstream never skips step 0"
            return self.last
        n = len(self.passes)
        out, _ = self.transformer(
            video=modality(video, self.video_context, sigma, n),
            audio=modality(audio, self.audio_context, frozen_sigma(sigma, self.frozen_audio_sigma), n),
            perturbations=self.perturbations,
        )
        self.forwards += 1
        by_name = {p.name: out[i : i + 1] for i, p in enumerate(self.passes)}
        self.last = self.guider.calculate(
            by_name["cond"], by_name.get("uncond", 0.0), by_name.get("perturbed", 0.0), by_name.get("isolated", 0.0)
        )
        return self.last


class PlainDenoiser:
    """Stage-2 denoiser: the distilled refinement uses the conditional pass alone."""

    def __init__(
        self,
        transformer: torch.nn.Module,
        video_context: torch.Tensor,
        audio_context: torch.Tensor,
        frozen_audio_sigma: str = "zero",
    ):
        self.transformer = transformer
        self.video_context = video_context
        self.audio_context = audio_context
        self.frozen_audio_sigma = frozen_audio_sigma

    def __call__(self, video: LatentState, audio: LatentState, sigma: torch.Tensor, step: int) -> torch.Tensor:  # noqa: ARG002
        out, _ = self.transformer(
            video=modality(video, self.video_context, sigma, 1),
            audio=modality(audio, self.audio_context, frozen_sigma(sigma, self.frozen_audio_sigma), 1),
            perturbations=None,
        )
        return out
