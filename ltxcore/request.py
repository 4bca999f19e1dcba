"""One fully resolved render request, with the upstream LTX-2.3 defaults and its checks.

The engine takes nothing else: manifests, plans and schedulers all reduce to a ``RenderRequest``. Nothing here
imports torch (the defaults are ``ltxcore.upstream_defaults``), so the item model built on it, plans and results
load without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from ltxcore import conditioning_audio, upstream_defaults
from ltxcore.errors import RenderInputError
from ltxcore.shapes import frames_for_duration, render_length
from ltxcore.windows import DEFAULT_CONTEXT_FRAMES, DEFAULT_WINDOW_SECONDS, LongForm, WindowSettings

if TYPE_CHECKING:
    from ltx_core.components.guiders import MultiModalGuiderParams

BOTH_IMAGE_FORMS = "and image are both set; write every image in images, or one image with image."
SIZE_STEP = 64  # two-stage: half size must still be a multiple of 32
# final renders, and drafts (ltxcore/recipes.py says how stage 1 differs)
Pipeline = Literal["two-stage", "distilled"]
PIPELINES: tuple[str, ...] = get_args(Pipeline)
MAX_LORA_STRENGTH = 10.0  # upstream sets no bound; this one catches a typo such as 80 for 0.8
MAX_CRF = 51  # H.264's CRF scale
# What the model is told of the frozen audio's sigma: 0 (upstream 1.2.0, "so prompt AdaLN and cross-modality
# gates match frozen conditioning") or the step's sigma (upstream 1.0.0). Per-token timesteps are 0 either way.
FrozenAudioSigma = Literal["zero", "step"]
FROZEN_AUDIO_SIGMAS: tuple[str, ...] = get_args(FrozenAudioSigma)
EnhanceKey = tuple[str, str | None, int]  # (prompt, first image, seed): see RenderRequest.enhance_key


@dataclass(frozen=True)
class ImageCondition:
    """One conditioning image, as upstream's ``--image PATH FRAME STRENGTH [CRF]``: frame 0 replaces the first
    latent frame, a later frame is a keyframe; ``crf`` is the H.264 re-compression it gets first (0: none)."""

    path: str
    frame: int = 0
    strength: float = 1.0
    crf: int = upstream_defaults.IMAGE_CRF


@dataclass(frozen=True)
class GuiderSettings:
    """The video multimodal guider (upstream ``MultiModalGuiderParams``), LTX-2.3 defaults."""

    cfg_scale: float = upstream_defaults.CFG_SCALE
    stg_scale: float = upstream_defaults.STG_SCALE
    rescale_scale: float = upstream_defaults.RESCALE_SCALE
    modality_scale: float = upstream_defaults.MODALITY_SCALE
    skip_step: int = upstream_defaults.SKIP_STEP
    stg_blocks: tuple[int, ...] = upstream_defaults.STG_BLOCKS

    def to_upstream(self) -> MultiModalGuiderParams:
        from ltx_core.components.guiders import MultiModalGuiderParams  # torch: only where the engine guides

        return MultiModalGuiderParams(
            cfg_scale=self.cfg_scale,
            stg_scale=self.stg_scale,
            rescale_scale=self.rescale_scale,
            modality_scale=self.modality_scale,
            skip_step=self.skip_step,
            stg_blocks=list(self.stg_blocks),
        )

    def problems(self) -> list[RenderInputError]:
        """The guider's ranges (its types are the item model's to check)."""
        out = []
        for name in ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale"):
            value = getattr(self, name)
            if not math.isfinite(value):
                out.append(RenderInputError(name, f"must be a finite number, got {value!r}."))
            elif not 0 <= value <= 50:
                out.append(RenderInputError(name, f"must be between 0 and 50, got {value}."))
        if math.isfinite(self.rescale_scale) and not 0 <= self.rescale_scale <= 1:
            out.append(RenderInputError("rescale_scale", f"must be between 0 and 1, got {self.rescale_scale}."))
        if self.skip_step < 0:
            out.append(RenderInputError("skip_step", f"must be a whole number >= 0, got {self.skip_step!r}."))
        if bad := [b for b in self.stg_blocks if b < 0]:
            out.append(RenderInputError("stg_blocks", f"has invalid block indices {bad}."))
        return out

    def model_problems(self, num_layers: int) -> list[RenderInputError]:
        """Blocks the model does not have: the engine checks its own, validation the bundle's header."""
        if bad := [b for b in self.stg_blocks if b >= num_layers]:
            limit = f"the model has blocks 0..{num_layers - 1}"
            return [RenderInputError("stg_blocks", f"has invalid block indices {bad} ({limit}).")]
        return []


@dataclass(frozen=True)
class LoraSpec:
    """A user LoRA (upstream's ``--lora PATH STRENGTH``): a .safetensors file in the released (ComfyUI)
    naming, applied in both stages at ``strength``."""

    path: str
    strength: float = upstream_defaults.LORA_STRENGTH

    @classmethod
    def parse(cls, values: list[str]) -> LoraSpec:
        """``--lora PATH [STRENGTH]``, as upstream's CLI takes it."""
        if not 1 <= len(values) <= 2:
            raise ValueError(f"--lora takes PATH and an optional STRENGTH, got {' '.join(values)!r}.")
        try:
            return cls(values[0], float(values[1])) if len(values) == 2 else cls(values[0])
        except ValueError:
            raise ValueError(f"--lora {' '.join(values)}: the strength must be a number, e.g. 0.8.") from None


@dataclass(frozen=True)
class RenderRequest:
    """Everything one clip needs. ``num_frames`` is the frames the clip shows (None: as many as cover the whole
    audio window); it renders ``render_frames``, the next of a few lengths (``ltxcore/shapes.py``)."""

    audio: str
    prompt: str
    seed: int = upstream_defaults.SEED
    negative_prompt: str = upstream_defaults.NEGATIVE_PROMPT
    audio_start_time: float = 0.0
    audio_max_duration: float | None = None
    image: str | None = None
    image_frame: int = 0
    image_strength: float = 1.0
    height: int = upstream_defaults.STAGE_2_HEIGHT
    width: int = upstream_defaults.STAGE_2_WIDTH
    num_frames: int | None = None
    frame_rate: float = upstream_defaults.FRAME_RATE
    num_inference_steps: int = upstream_defaults.NUM_INFERENCE_STEPS
    pipeline: Pipeline = "two-stage"
    guider: GuiderSettings = field(default_factory=GuiderSettings)
    distilled_lora_strength: float = 1.0
    audio_conditioning_noise_db: float | None = None
    audio_conditioning_loudness_lufs: float | None = None

    loras: tuple[LoraSpec, ...] = ()
    images: tuple[ImageCondition, ...] = ()  # several images; ``image`` is the one-image shorthand
    enhance_prompt: bool = False
    prompt_enhanced: str | None = None  # the enhanced prompt when already known (a resumed run reuses it)
    frozen_audio_sigma: FrozenAudioSigma = "zero"
    # a clip longer than one window renders as several (ltxcore/windows.py, ltxcore/long_form.py)
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    long_form: LongForm = "continuous"

    @property
    def frames(self) -> int:
        """``num_frames`` of a resolved request (``Engine.resolve`` fills it from the audio window)."""
        if self.num_frames is None:
            raise ValueError("num_frames is not resolved yet: Engine.resolve fills it from the audio window")
        return self.num_frames

    @property
    def render_frames(self) -> int:
        """The frames the engine renders for a resolved request: the next valid length that holds ``frames``;
        those past ``frames`` are rendered over silence and dropped (``ltxcore/shapes.py``)."""
        return render_length(self.frames)

    @property
    def window_settings(self) -> WindowSettings:
        return WindowSettings(self.window_seconds, self.context_frames, self.long_form)

    def conditioning_images(self) -> list[tuple[str, ImageCondition]]:
        """Every conditioning image with the field that names it: ``images[i]``, or the shorthand's ``image``."""
        if self.images:
            return [(f"images[{i}]", image) for i, image in enumerate(self.images)]
        if self.image is None:
            return []
        return [("image", ImageCondition(self.image, self.image_frame, self.image_strength))]

    @property
    def enhance_key(self) -> EnhanceKey:
        """What an enhancement depends on: the prompt, the first conditioning image and the seed. One
        enhancement serves every request (and every result row) with the same key."""
        images = self.conditioning_images()
        return self.prompt, images[0][1].path if images else None, self.seed

    @property
    def encoded_prompt(self) -> str:
        """The prompt Gemma encodes: the enhanced one when the request asks for enhancement."""
        return self.prompt_enhanced if self.enhance_prompt and self.prompt_enhanced is not None else self.prompt

    def problems(self) -> list[RenderInputError]:
        """Every problem the request shows by itself (ranges, files that are not there, fields that contradict
        each other), as field-named errors. Types are the item model's to check (``manifests.item``); what needs
        the model or the media's contents, the engine's (``Engine.resolve``) and validation's."""
        out: list[RenderInputError] = []

        def bad(name: str, message: str) -> None:
            out.append(RenderInputError(name, message))

        if not self.prompt.strip():
            bad("prompt", "is empty; describe the shot, e.g. 'A presenter talks to the camera'.")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value <= 0 or value % SIZE_STEP:
                bad(name, f"must be a positive multiple of {SIZE_STEP} for the two-stage pipeline, got {value!r}.")
        if self.num_frames is not None and self.num_frames < 1:
            bad("num_frames", f"must be a whole number of frames >= 1, got {self.num_frames!r}.")
        if not math.isfinite(self.frame_rate) or not 1 <= self.frame_rate <= 120:
            bad("frame_rate", f"must be between 1 and 120 frames per second, got {self.frame_rate!r}.")
        if not 1 <= self.num_inference_steps <= 200:
            bad("num_inference_steps", f"must be a whole number from 1 to 200, got {self.num_inference_steps!r}.")
        if not math.isfinite(self.audio_start_time) or self.audio_start_time < 0:
            bad("audio_start_time", f"must be a time in seconds >= 0, got {self.audio_start_time!r}.")
        if self.audio_max_duration is not None and (
            not math.isfinite(self.audio_max_duration) or self.audio_max_duration <= 0
        ):
            bad("audio_max_duration", f"must be a positive number of seconds, got {self.audio_max_duration!r}.")
        if not math.isfinite(self.image_strength) or not 0 <= self.image_strength <= 1:
            bad("image_strength", f"must be between 0 and 1, got {self.image_strength!r}.")
        if self.image_frame < 0:
            bad("image_frame", f"must be a frame index >= 0, got {self.image_frame!r}.")
        elif self.num_frames is not None and 1 <= self.num_frames <= self.image_frame:
            bad("image_frame", f"is {self.image_frame}, past the last frame ({self.num_frames - 1}).")
        if not math.isfinite(self.distilled_lora_strength) or not 0 <= self.distilled_lora_strength <= 2:
            bad("distilled_lora_strength", f"must be between 0 and 2, got {self.distilled_lora_strength!r}.")
        if not 0 <= self.seed < 2**63:
            bad("seed", f"must be a whole number from 0 to 2**63-1, got {self.seed!r}.")
        for name, value in [("audio", self.audio), ("image", self.image)] + [
            (f"images[{i}].path", image.path) for i, image in enumerate(self.images)
        ]:
            if value is not None and "://" not in str(value) and not Path(value).is_file():
                bad(name, f"file {value} does not exist or is not a file.")
        if math.isfinite(self.frame_rate) and self.frame_rate > 0:
            out += [RenderInputError(name, message) for name, message in self.window_settings.problems(self.frame_rate)]
        out += conditioning_audio.problems(self.audio_conditioning_noise_db, self.audio_conditioning_loudness_lufs)
        return out + self._image_problems() + self._lora_problems() + self.guider.problems()

    def _lora_problems(self) -> list[RenderInputError]:
        """Strengths, repeats and files of the user LoRAs; whether they fit the model is the engine's check."""
        out, seen = [], set()

        def bad(message: str) -> None:
            out.append(RenderInputError("loras", message))

        for lora in self.loras:
            if not math.isfinite(lora.strength) or abs(lora.strength) > MAX_LORA_STRENGTH:
                limit = f"between -{MAX_LORA_STRENGTH:g} and {MAX_LORA_STRENGTH:g}"
                bad(f"{lora.path}: strength must be {limit}, got {lora.strength!r}.")
            if lora.path in seen:
                bad(f"lists {lora.path} twice; give it once, with the strengths added.")
            seen.add(lora.path)
            if not lora.path.endswith(".safetensors"):
                bad(f"{lora.path} is not a .safetensors file; only safetensors are loaded.")
            elif "://" not in lora.path and not Path(lora.path).is_file():
                bad(f"file {lora.path} does not exist or is not a file.")
        return out

    def _image_problems(self) -> list[RenderInputError]:
        """Upstream's image checks, per image of the list: a frame inside the clip, a strength in 0..1."""
        if not self.images:
            return []
        if self.image is not None:
            return [RenderInputError("images", BOTH_IMAGE_FORMS)]
        out = []
        for i, image in enumerate(self.images):
            where = f"images[{i}]"
            if image.frame < 0:
                out.append(RenderInputError(f"{where}.frame", f"must be a frame index >= 0, got {image.frame!r}."))
            elif self.num_frames is not None and 1 <= self.num_frames <= image.frame:
                message = f"is {image.frame}, past the last frame of the clip ({self.num_frames - 1})."
                out.append(RenderInputError(f"{where}.frame", message))
            if not math.isfinite(image.strength) or not 0 <= image.strength <= 1:
                message = f"must be between 0 and 1, got {image.strength!r}."
                out.append(RenderInputError(f"{where}.strength", message))
            if not 0 <= image.crf <= MAX_CRF:
                message = f"must be a whole number from 0 to {MAX_CRF} (0: no re-compression), got {image.crf!r}."
                out.append(RenderInputError(f"{where}.crf", message))
        return out


class AudioWindowed(Protocol):
    """What the audio window depends on: a ``RenderRequest``, or a manifest ``Item``."""

    @property
    def audio_start_time(self) -> float: ...
    @property
    def audio_max_duration(self) -> float | None: ...
    @property
    def frame_rate(self) -> float: ...


def audio_window(clip: AudioWindowed, audio_seconds: float) -> float:
    """Seconds of an ``audio_seconds`` long file the clip can use: from its start time to the end of the file,
    at most ``audio_max_duration``."""
    window = audio_seconds - clip.audio_start_time
    return window if clip.audio_max_duration is None else min(window, clip.audio_max_duration)


def frames_for_audio(clip: AudioWindowed, audio_seconds: float) -> int:
    """The frames a clip that leaves ``num_frames`` to its audio shows: enough to cover its whole audio window
    (``ltxcore/shapes.py``). The engine, the plan and validation all derive it here."""
    return frames_for_duration(audio_window(clip, audio_seconds), clip.frame_rate)


def pipeline_problem(pipeline: str, transformer: str) -> str | None:
    """Why an item of ``pipeline`` cannot render on workers holding the ``transformer`` checkpoint, or None."""
    if pipeline == "two-stage" and transformer == "distilled":
        return (
            "is two-stage, which needs the dev checkpoint, but this run's workers hold the distilled one "
            "(--transformer distilled). Set pipeline: distilled (or render with --draft), or use --transformer dev."
        )
    return None
