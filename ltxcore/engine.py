"""The resident A2Vid engine: load a bundle once, then render any number of independent requests.

Per request it runs what upstream's ``A2VidPipelineTwoStage`` runs, in the same order and with the
same random stream: prompt enhancement (when asked), text encoding, audio encoding (then frozen), stage 1
at half size with the multimodal guider, 2x latent upsample, stage 2 with the distilled LoRA, tiled VAE
decode, and an mp4 that carries the original audio. The request's user LoRAs apply in both stages. Nothing is
rebuilt between requests. A ``distilled`` request (a draft) differs in stage 1 only, as ``ltxcore/recipes.py``
describes.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.model.audio_vae import encode_audio
from ltx_core.model.transformer import X0Model
from ltx_core.model.upsampler import upsample_video
from ltx_core.model.video_vae import TilingConfig, decode_video
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import Audio, AudioLatentShape, LatentState, VideoLatentShape, VideoPixelShape
from ltx_pipelines.utils.constants import STAGE_2_DISTILLED_SIGMA_VALUES

from ltxcore.adapters import Adapters
from ltxcore.artifacts import ArtifactCache
from ltxcore.audio_ahead import AudioAhead
from ltxcore.blocks import BlockLoop
from ltxcore.bundle import ModelBundle
from ltxcore.enhance import EnhanceKey, PromptEnhancer, max_new_tokens
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.fp8_store import build_transformer
from ltxcore.guidance import PlainDenoiser, synthetic_inputs
from ltxcore.images import ImageLatents
from ltxcore.loading import build_component, build_embeddings_processor, build_text_encoder
from ltxcore.lora import LoraError
from ltxcore.media import AudioClip, probe_audio
from ltxcore.mp4 import first_frames
from ltxcore.mux_process import MuxProcess
from ltxcore.offload import StreamedModule
from ltxcore.recipes import RECIPES, prompt_pair
from ltxcore.render_result import PhaseClock, RenderResult
from ltxcore.request import RenderRequest, frames_for_audio, pipeline_problem
from ltxcore.text import PromptCache, PromptKey, encode_prompts

DTYPE = torch.bfloat16
LATENT_CHANNELS = 128
AUDIO_LATENT_CHANNELS, AUDIO_MEL_BINS = 8, 16
DISTILLED = "distilled"  # the bundle's distilled LoRA among the engine's adapters


class Engine:
    """Holds every model of a bundle for its whole life: the diffusion models on ``device``; on a GPU the
    text path in pinned host memory, streamed to the GPU layer by layer when prompts are encoded.

    The transformer's block loop is ours (:class:`~ltxcore.blocks.BlockLoop`): it shares the STG pass's
    prefix, and with ``compile`` it compiles whole blocks and, on a GPU, replays each stage's loop from a
    CUDA graph captured once per rendered length; the compiled blocks serve every length (their token axes are
    symbolic), and :meth:`warm_up` pays the compile up front, once per frame size, pipeline and LoRA set.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        device: str | torch.device = "cpu",
        prompt_cache_size: int = 64,
        compile: bool = False,
        max_loras: int = 4,
        artifacts: ArtifactCache | None = None,
    ):
        """``max_loras``: user LoRAs held at once (least recently used evicted); ``artifacts``: where an FP8
        transformer is read from, or written to once quantized (``ltxcore.fp8_store``)."""
        self.bundle = bundle
        self.device = torch.device(device)
        self.load_seconds: dict[str, float] = {}
        velocity_model, self.fp8_weights = build_transformer(bundle, self.device, artifacts, self._timed)
        fp8_lora = bundle.quantization == "fp8-compact"
        self.adapters = Adapters(velocity_model, DTYPE, max_loaded=max_loras, fp8=fp8_lora)
        if bundle.transformer == "dev":  # the distilled checkpoint needs no LoRA: it is what the LoRA approximates
            self._timed("distilled_lora", lambda: self._pin_distilled(bundle.distilled_lora))
        on_gpu = self.device.type == "cuda"
        self.blocks = BlockLoop(
            velocity_model,
            compile=compile,
            cuda_graphs=compile and on_gpu,
            state_key=lambda: self.adapters.key,
            dynamic_tokens=True,  # one compiled graph per block kind serves every clip and window length
        )
        self.num_layers = len(velocity_model.transformer_blocks)
        self.transformer = X0Model(velocity_model).eval()  # predicts the denoised latent, as the samplers expect
        self.video_encoder = self._timed("video_encoder", lambda: build_component(bundle, "video_encoder", self.device))
        self.video_decoder = self._timed("video_decoder", lambda: build_component(bundle, "video_decoder", self.device))
        self.audio_encoder = self._timed("audio_encoder", lambda: build_component(bundle, "audio_encoder", self.device))
        self.upsampler = self._timed("upsampler", lambda: build_component(bundle, "spatial_upsampler", self.device))
        text_device = torch.device("cpu") if self.device.type == "cuda" else self.device
        self.text_encoder = self._timed("text_encoder", lambda: build_text_encoder(bundle, text_device))
        self.embeddings = self._timed("embeddings", lambda: build_embeddings_processor(bundle, text_device))
        self.text_stream = None
        if self.device.type == "cuda":
            path = torch.nn.ModuleList([self.text_encoder, self.embeddings])
            self.text_stream = self._timed("text_pin", lambda: StreamedModule(path, self.device))
        self.prompts = PromptCache(prompt_cache_size)
        self.enhancer = PromptEnhancer(self.text_encoder, max_new_tokens(bundle.gemma_root))
        self.images = ImageLatents(self.video_encoder, DTYPE, self.device)
        self.video_patchifier = VideoLatentPatchifier(patch_size=1)
        self.audio_patchifier = AudioPatchifier(patch_size=1)
        self.stepper = EulerDiffusionStep()
        self.tiling = TilingConfig.default()
        self.audio_ahead = AudioAhead(self.resolve)  # the next item's audio, read while this one renders
        self.muxer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mux")  # waits on the encoder process
        self.encoder = MuxProcess()
        weakref.finalize(self, self.encoder.close)

    def _pin_distilled(self, path: str) -> None:
        try:
            self.adapters.pin(DISTILLED, path)
        except LoraError as e:
            raise BundleError(f"distilled_lora {e.message}") from e

    def _timed(self, name: str, build: Callable):
        start = time.perf_counter()
        model = build()
        self.load_seconds[name] = time.perf_counter() - start
        return model

    # --- public API -------------------------------------------------------------------------

    def resolve(self, request: RenderRequest) -> RenderRequest:
        """Check what needs this worker's model and the audio, and fill ``num_frames`` to cover the audio window;
        raises ``RenderInputError``. The request's own rules (``RenderRequest.problems``) are validation's: every
        item was checked, all problems at once, before it reached a worker."""
        problems = request.guider.model_problems(self.num_layers)
        if problems:
            raise problems[0]
        if problem := pipeline_problem(request.pipeline, self.bundle.transformer):
            raise RenderInputError("pipeline", problem)
        info = probe_audio(request.audio)
        if request.audio_start_time >= info.duration:
            raise RenderInputError(
                "audio_start_time", f"{request.audio_start_time}s is past the end of the audio ({info.duration:.2f}s)."
            )
        if request.num_frames is not None:
            return request
        return replace(request, num_frames=frames_for_audio(request, info.duration))

    def warm_prompts(self, pairs: list[tuple[str, str | None]]) -> None:
        """Encode every not-yet-cached (prompt, negative prompt) pair, e.g. all of a shard's up front; a
        ``None`` negative (see ``recipes.prompt_pair``) is not encoded."""
        self.prompts.capacity = max(self.prompts.capacity, len(set(pairs)))  # a shard's pairs all stay cached
        if any(p not in self.prompts for p in pairs):
            with self._text_path(resident=False):
                self._encode(pairs)

    def prepare_prompts(self, requests: list[RenderRequest]) -> list[RenderRequest | Exception]:
        """A shard's prompts before its first item, in one visit of Gemma to the device: each enhancement the
        requests ask for and do not carry is generated once per (prompt, first image, seed), with Gemma
        resident (generation runs it once per token), then every prompt pair is encoded. Returns the requests
        with their enhanced prompts; in place of one whose enhancement failed, the exception that failed it
        (one bad item must not stop the others, and its render must not generate it a second time)."""
        keys = self.enhancer.missing(requests)
        failed: dict[EnhanceKey, Exception] = {}
        with self._text_path(resident=bool(keys)):
            for key in keys:
                try:
                    self.enhancer.generate(key)
                except Exception as e:  # the failure of its items, each told it with its traceback
                    failed[key] = e
            requests = [self.enhancer.enhanced(r) for r in requests]
            ready = [r for r in requests if not r.enhance_prompt or r.prompt_enhanced is not None]
            self.prompts.capacity = max(self.prompts.capacity, len(requests))  # a shard's pairs all stay cached
            self._encode([prompt_pair(r) for r in ready])
        unenhanced = [r.enhance_prompt and r.prompt_enhanced is None for r in requests]
        return [failed.get(r.enhance_key, r) if bare else r for r, bare in zip(requests, unenhanced, strict=True)]

    def _text_path(self, resident: bool):
        """Gemma and the text connectors on the device: streamed layer by layer, or ``resident`` all at once."""
        if self.text_stream is None:
            return contextlib.nullcontext()
        return self.text_stream.resident() if resident else self.text_stream.on()

    def _encode(self, pairs: list[PromptKey]) -> None:
        """Encode the pairs not yet cached; the text path must be on the device."""
        missing = list(dict.fromkeys(p for p in pairs if p not in self.prompts))
        texts = list(dict.fromkeys(text for pair in missing for text in pair if text is not None))
        if not texts:
            return
        encodings = encode_prompts(texts, self.text_encoder, self.embeddings, self.device)
        encoded = {**dict(zip(texts, encodings, strict=True)), None: None}
        for positive, negative in missing:
            self.prompts.put((positive, negative), (encoded[positive], encoded[negative]))

    def _with_distilled(self, user: dict[str, float], strength: float) -> dict[str, float]:
        """The adapters of a stage: the user LoRAs, plus the distilled LoRA at ``strength`` on a dev-checkpoint
        worker (a distilled-checkpoint worker holds none)."""
        return {**user, DISTILLED: strength} if self.bundle.transformer == "dev" else user

    @torch.inference_mode()
    def warm_up(self, request: RenderRequest) -> float:
        """Run the transformer once as ``request`` will (its shape, its pipeline's stage-1 batch, perturbations
        and LoRAs, its stage-2 LoRAs; media are not read), so that compilation and kernel selection happen now,
        not inside the first item. Returns the seconds taken."""
        start = time.perf_counter()
        user = self.user_loras(request)
        frames, fps = request.render_frames, request.frame_rate
        recipe = RECIPES[request.pipeline]
        half = VideoPixelShape(1, frames, request.height // 2, request.width // 2, fps)
        full = VideoPixelShape(1, frames, request.height, request.width, fps)
        stages = (  # as the recipe's denoiser (stage 1) and PlainDenoiser (stage 2) call it
            (half, *recipe.batch(request), self._with_distilled(user, recipe.lora_strength(request))),
            (full, 1, None, self._with_distilled(user, request.distilled_lora_strength)),
        )
        for shape, batch, perturbations, strengths in stages:
            video, audio = synthetic_inputs(self.transformer, shape, batch)
            with self.adapters.active(strengths):
                self.transformer(video=video, audio=audio, perturbations=perturbations)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    @torch.inference_mode()
    def render(
        self, request: RenderRequest, output: str | Path | None, keep_latent: bool = False, background_mux: bool = False
    ) -> RenderResult:
        """Render one request to ``output`` (an mp4 path; ``None`` skips decode and mux). With
        ``background_mux`` the mp4 is encoded on a worker thread while the caller goes on (e.g. to the next
        item's GPU work); ``result.wait()`` then finishes it."""
        request = self.resolve(request)
        clock = PhaseClock(self.device)
        request, generator, clip, latent = self._generate(request, clock, None)

        result = _result(request, clip, latent.clone() if keep_latent else None, output)
        if output is not None:  # the frames shown, with the audio under them
            frames = first_frames(self._decode(latent, generator, clock), request.frames)
            mux = (output, frames, request.frame_rate, clip, request.frames)
            result.muxing = self.muxer.submit(self.encoder.write, *mux)
        result.timings, result.peak_memory = clock.timings, clock.peaks
        return result if background_mux else result.wait()

    def _generate(
        self, request: RenderRequest, clock: PhaseClock, context: torch.Tensor | None
    ) -> tuple[RenderRequest, torch.Generator, AudioClip, torch.Tensor]:
        """The stage-2 latent of a resolved request (with its enhanced prompt, generator and audio clip);
        ``context``: decoded frames that continue an earlier window (see :meth:`render_window`)."""
        generator = torch.Generator(device=self.device).manual_seed(request.seed)
        noiser = GaussianNoiser(generator=generator)

        request = self.enhancer.enhanced(request)
        if request.enhance_prompt and request.prompt_enhanced is None:
            with clock.phase("enhance"), self._text_path(resident=True):
                self.enhancer.generate(request.enhance_key)
            request = self.enhancer.enhanced(request)
        with clock.phase("loras"):
            user = self.user_loras(request)
        with clock.phase("text_encode"):
            self.warm_prompts([prompt_pair(request)])
            encodings = self.prompts.get(prompt_pair(request))
            assert encodings is not None, "warm_prompts just cached them"
            positive, negative = encodings
        with clock.phase("audio_encode"):
            clip, audio_latent = self._encode_audio(request)
        frames = request.render_frames
        half = VideoPixelShape(1, frames, request.height // 2, request.width // 2, request.frame_rate)
        full = VideoPixelShape(1, frames, request.height, request.width, request.frame_rate)
        with clock.phase("image_conditioning"):
            stage_1_conditions = self._conditions(request, context, half.height, half.width)
        recipe = RECIPES[request.pipeline]
        with clock.phase("stage_1"), self.adapters.active(self._with_distilled(user, recipe.lora_strength(request))):
            denoiser = recipe.denoiser(self.transformer, request, positive, negative)
            sigmas = recipe.sigmas(request).to(self.device)
            latent = self._denoise(half, stage_1_conditions, noiser, sigmas, denoiser, audio_latent, None)
        with clock.phase("upsample"):
            latent = upsample_video(latent=latent[:1], video_encoder=self.video_encoder, upsampler=self.upsampler)
        with clock.phase("image_conditioning"):
            stage_2_conditions = self._conditions(request, context, full.height, full.width)
        with clock.phase("stage_2"), self.adapters.active(self._with_distilled(user, request.distilled_lora_strength)):
            sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES, device=self.device)
            denoiser = PlainDenoiser(self.transformer, positive.video, positive.audio, request.frozen_audio_sigma)
            latent = self._denoise(full, stage_2_conditions, noiser, sigmas, denoiser, audio_latent, latent)

        return request, generator, clip, latent

    @torch.inference_mode()
    def render_window(self, request: RenderRequest, context: torch.Tensor | None) -> tuple[RenderResult, list]:
        """One window of a long clip (``ltxcore/long_form.py``): its decoded frames as uint8 chunks on the host,
        not an mp4. ``context`` (uint8 frames, (f, h, w, 3), ``f`` = 8k+1): the previous window's last frames,
        which this window's first frames are conditioned on (by latent index 0, as upstream conditions a first
        image); its frame-0 images then condition as keyframes at frame 0, so identity still holds."""
        request = self.resolve(request)
        clock = PhaseClock(self.device)
        request, generator, clip, latent = self._generate(request, clock, context)
        frames = self._decode(latent, generator, clock)
        result = _result(request, clip, latent.clone(), None)
        result.timings, result.peak_memory = clock.timings, clock.peaks
        return result, frames

    def _decode(self, latent: torch.Tensor, generator: torch.Generator, clock: PhaseClock) -> list[torch.Tensor]:
        """The stage-2 latent as uint8 frame chunks on the host."""
        with clock.phase("decode"):
            return [chunk.cpu() for chunk in decode_video(latent, self.video_decoder, self.tiling, generator)]

    def context_latent(self, frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The VAE latent of decoded frames (uint8, (f, h, w, 3)) at ``height`` x ``width``: how a window's last
        frames condition the next window."""
        pixels = frames.to(self.device, torch.float32).permute(3, 0, 1, 2)  # (3, f, h, w)
        if pixels.shape[2:] != (height, width):
            pixels = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True)
        pixels = (pixels / 127.5 - 1.0).clamp(-1.0, 1.0).unsqueeze(0).to(DTYPE)
        return self.video_encoder(pixels)

    def _conditions(self, request: RenderRequest, context: torch.Tensor | None, height: int, width: int) -> list:
        """A stage's conditioning items: the request's images as upstream applies them; with ``context``, the
        context's latent at index 0 and every image as a keyframe at its frame."""
        images = request.conditioning_images()
        if context is None:
            return self.images.conditions(images, height, width)
        items = self.images.conditions(images, height, width, keyframes=True)
        latent = self.context_latent(context, height, width)
        return [VideoConditionByLatentIndex(latent=latent, strength=1.0, latent_idx=0), *items]

    def user_loras(self, request: RenderRequest) -> dict[str, float]:
        """The request's LoRAs made resident, as ``{adapter name: strength}`` for :meth:`Adapters.active`."""
        if len(request.loras) > self.adapters.max_loaded:
            raise RenderInputError(
                "loras",
                f"names {len(request.loras)} LoRAs, but a worker holds at most {self.adapters.max_loaded} at a time; "
                f"raise --max-loras to {len(request.loras)}.",
            )
        return {self.adapters.load(lora.path): lora.strength for lora in request.loras}

    # --- the steps ----------------------------------------------------------------------------

    def _encode_audio(self, request: RenderRequest) -> tuple[AudioClip, torch.Tensor]:
        seconds = request.render_frames / request.frame_rate
        clip, heard = self.audio_ahead.get(request)  # the mp4 gets ``clip``, the original
        waveform = torch.from_numpy(heard.samples).unsqueeze(0).to(self.device)  # (1, 2, samples), as upstream's
        audio = Audio(waveform=waveform, sampling_rate=clip.sample_rate)
        latent = encode_audio(audio, self.audio_encoder)
        frames = AudioLatentShape.from_duration(1, seconds, AUDIO_LATENT_CHANNELS, AUDIO_MEL_BINS).frames
        if latent.shape[2] < frames:  # rounding at the tail: extend with the encoding of silence
            latent = torch.nn.functional.pad(latent, (0, 0, 0, frames - latent.shape[2]), mode="replicate")
        return clip, latent[:, :, :frames]

    def _denoise(self, shape, conditions, noiser, sigmas, denoiser, audio_latent, initial_video) -> torch.Tensor:
        """Euler loop over ``sigmas`` with the audio latent frozen; returns the unpatchified video latent."""
        video_shape = VideoLatentShape.from_pixel_shape(shape=shape, latent_channels=LATENT_CHANNELS)
        video_tools = VideoLatentTools(self.video_patchifier, video_shape, shape.fps)
        video = video_tools.create_initial_state(self.device, DTYPE, initial_video)
        for condition in conditions:
            video = condition.apply_to(latent_state=video, latent_tools=video_tools)
        video = noiser(video, sigmas[0] if initial_video is not None else 1.0)

        audio_tools = AudioLatentTools(self.audio_patchifier, AudioLatentShape.from_video_pixel_shape(shape))
        audio = audio_tools.create_initial_state(self.device, DTYPE, audio_latent)
        audio = noiser(audio, 0.0)  # draws (and discards) noise exactly as upstream, keeping the random stream
        audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask))

        for step in range(len(sigmas) - 1):
            denoised = denoiser(video, audio, sigmas[step], step)
            denoised = _keep_conditioned(denoised, video)
            video = replace(video, latent=self.stepper.step(video.latent, denoised, sigmas, step))
        video = video_tools.clear_conditioning(video)
        return video_tools.unpatchify(video).latent


def _keep_conditioned(denoised: torch.Tensor, state: LatentState) -> torch.Tensor:
    """Tokens with denoise mask 0 (the conditioning image) keep their clean values."""
    mask = state.denoise_mask
    return (denoised * mask + state.clean_latent.float() * (1 - mask)).to(denoised.dtype)


def _result(
    request: RenderRequest, clip: AudioClip, latent: torch.Tensor | None, output: str | Path | None
) -> RenderResult:
    """What a render (or one window of a long clip) produced, before its timings are added."""
    return RenderResult(
        output=None if output is None else str(output),
        num_frames=request.frames,
        height=request.height,
        width=request.width,
        frame_rate=request.frame_rate,
        seed=request.seed,
        audio_padded_seconds=max(0.0, round(request.frames / request.frame_rate - clip.duration, 6)),
        video_latent=latent,
        prompt_enhanced=request.prompt_enhanced if request.enhance_prompt else None,
    )
