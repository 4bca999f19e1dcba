"""Stage-1 recipes: how each pipeline's first stage denoises. Everything around stage 1 (audio encoding,
then frozen; image conditioning; the 2x upsample; stage 2 with the distilled LoRA; decode) is the same.

``two-stage`` is upstream's ``A2VidPipelineTwoStage``: ``LTX2Scheduler`` sigmas over ``num_inference_steps``,
the multimodal guider (its passes batched), the dev model without LoRA. ``distilled`` is the recipe an
upstream maintainer gave for a distilled audio-to-video pipeline (upstream issue 309; upstream has none):
the distilled LoRA active in stage 1 too, a plain unguided denoiser, and ``DISTILLED_SIGMA_VALUES`` (8 steps).
A draft is about a quarter of a final render's cost, so a campaign can be previewed, then promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ltx_core.components.guiders import MultiModalGuider
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES

from ltxcore.guidance import GuidedDenoiser, PlainDenoiser, batched_perturbations, guidance_passes
from ltxcore.request import RenderRequest
from ltxcore.text import PromptEncoding


@dataclass(frozen=True)
class StageOneRecipe:
    """One pipeline's stage 1: guided or plain, and whether the distilled LoRA is active in it."""

    guided: bool
    distilled_lora: bool

    def sigmas(self, request: RenderRequest) -> torch.Tensor:
        if self.guided:
            return LTX2Scheduler().execute(steps=request.num_inference_steps).to(torch.float32)
        return torch.tensor(DISTILLED_SIGMA_VALUES, dtype=torch.float32)

    def lora_strength(self, request: RenderRequest) -> float:
        return request.distilled_lora_strength if self.distilled_lora else 0.0

    def denoiser(
        self,
        transformer: torch.nn.Module,
        request: RenderRequest,
        positive: PromptEncoding,
        negative: PromptEncoding | None,
    ) -> GuidedDenoiser | PlainDenoiser:
        """The stage-1 denoiser over the encoded prompts (``negative`` is ``None`` for a plain recipe)."""
        if not self.guided:
            return PlainDenoiser(transformer, positive.video, positive.audio, request.frozen_audio_sigma)
        assert negative is not None, "prompt_pair encodes the negative prompt for a guided recipe"
        guider = MultiModalGuider(params=request.guider.to_upstream(), negative_context=negative.video)
        return GuidedDenoiser(transformer, guider, positive.video, positive.audio, request.frozen_audio_sigma)

    def batch(self, request: RenderRequest) -> tuple[int, BatchedPerturbationConfig | None]:
        """The transformer's batch and perturbations per stage-1 forward, as its denoiser calls it."""
        if not self.guided:
            return 1, None
        passes = guidance_passes(MultiModalGuider(params=request.guider.to_upstream()))
        return len(passes), batched_perturbations(passes)


RECIPES = {
    "two-stage": StageOneRecipe(guided=True, distilled_lora=False),
    "distilled": StageOneRecipe(guided=False, distilled_lora=True),
}


def prompt_pair(request: RenderRequest) -> tuple[str, str | None]:
    """The prompts a request needs encoded (the enhanced prompt where asked for): the negative prompt only where
    a guider uses it."""
    return request.encoded_prompt, request.negative_prompt if RECIPES[request.pipeline].guided else None
