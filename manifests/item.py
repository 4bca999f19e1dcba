"""The manifest item: one pydantic model from which everything about an item derives.

Validation, the Arrow columns of plans and results, the engine's ``RenderRequest``, the list of media
fields and the published JSON Schema all come from ``Item``. Names and defaults are upstream LTX-2.3's,
taken from the engine's request. The video guider's fields may be written nested
(``video_guider: {cfg_scale: 3}``) or flat (``video_cfg_scale: 3``); the flat names are the canonical
column names in Parquet and in the results table.

Adding a field means adding one line to ``Item`` (and a field of the same name to ``RenderRequest`` when
the engine takes it, which ``to_request`` then fills by name). A list of records (``loras``) is a list of a
small model of its own; its Arrow type (list of struct) and its media paths derive from that model too.

Conditioning images have two forms: ``images``, a list of ``{path, frame, strength, crf}`` (upstream's
repeatable ``--image``), and ``image`` / ``image_frame`` / ``image_strength``, the one-image shorthand. An item
uses one or the other (both is an error naming the item); an item's own form replaces the other form set in the
defaults. Plans keep each item as written; the results table's ``images`` holds the resolved list either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, get_args

import pyarrow as pa
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.fields import FieldInfo

from ltxcore.request import (
    BOTH_IMAGE_FORMS,
    FROZEN_AUDIO_SIGMAS,
    PIPELINES,
    FrozenAudioSigma,
    GuiderSettings,
    ImageCondition,
    LoraSpec,
    Pipeline,
    RenderRequest,
)
from ltxcore.windows import LONG_FORMS, LongForm

GUIDER_PREFIX = "video_"
GUIDER_SECTION = "video_guider"
UNSAFE_ID_CHARS = set('/\\:*?"<>|')
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class Kind:
    """What a field holds: named in type errors (``must be a number``) and typed in Arrow tables."""

    what: str
    arrow: pa.DataType
    media: bool = False  # a path or URI of an input file


def _whole_float(value: object) -> object:
    """``3.0`` counts as a whole number (YAML and Parquet float columns write it so)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Text = Annotated[str, Strict(), Kind("text", pa.string())]
Media = Annotated[str, Strict(), Kind("text", pa.string(), media=True)]
Whole = Annotated[int, Strict(), BeforeValidator(_whole_float), Kind("a whole number", pa.int64())]
# An int stays an int (messages echo the value as written); the schema calls both "number".
Number = Annotated[
    Annotated[int, Strict()] | Annotated[float, Strict()],
    WithJsonSchema({"type": "number"}),
    Kind("a number", pa.float64()),
]
PipelineField = Annotated[Pipeline, Kind(f"one of {', '.join(PIPELINES)}", pa.string())]
Blocks = Annotated[list[Annotated[int, Strict()]], Kind("a list of whole numbers", pa.list_(pa.int64()))]
Labels = Annotated[
    dict[Annotated[str, Strict()], Annotated[str, Strict()]],
    Kind("a mapping of labels", pa.map_(pa.string(), pa.string())),
]


def _kind(info: FieldInfo) -> Kind:
    nested = [meta for arg in get_args(info.annotation) for meta in getattr(arg, "__metadata__", ())]  # T | None
    return next(meta for meta in (*info.metadata, *nested) if isinstance(meta, Kind))


def _struct(model: type[BaseModel]) -> pa.DataType:
    return pa.struct([pa.field(name, _kind(info).arrow) for name, info in model.model_fields.items()])


class Lora(BaseModel):
    """A user LoRA (upstream's ``--lora PATH STRENGTH``), applied in both stages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Media = Field(
        min_length=1,
        description="a .safetensors LoRA in the released (ComfyUI) naming, file or URI; relative to the manifest",
    )
    strength: Number = Field(LoraSpec.strength, description="how strongly it applies; 0 turns it off")


Loras = Annotated[list[Lora], Kind("a list of {path, strength} entries", pa.list_(_struct(Lora)))]
Flag = Annotated[bool, Strict(), Kind("true or false", pa.bool_())]
LongFormField = Annotated[LongForm, Kind(f"one of {', '.join(LONG_FORMS)}", pa.string())]
FrozenSigma = Annotated[FrozenAudioSigma, Kind(f"one of {', '.join(FROZEN_AUDIO_SIGMAS)}", pa.string())]


class ImageInput(BaseModel):
    """One conditioning image, as upstream's ``--image PATH FRAME STRENGTH [CRF]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Media = Field(min_length=1, description="image file or URI; a relative path is relative to the manifest")
    frame: Whole = Field(
        ImageCondition.frame, description="0: replaces the first latent frame; later: a keyframe there"
    )
    strength: Number = Field(ImageCondition.strength, description="0..1, how strongly the image is kept")
    crf: Whole = Field(ImageCondition.crf, description="H.264 CRF it is re-compressed at first, as upstream; 0: none")


IMAGE_STRUCT = _struct(ImageInput)
Images = Annotated[
    list[ImageInput],
    Kind("a list of {path, frame, strength, crf} mappings", pa.list_(IMAGE_STRUCT), media=True),
]
IMAGE_FORMS = (("images",), ("image", "image_frame", "image_strength"))  # the list, and the one-image shorthand
# RenderRequest fields that are not Item fields as they are (``images`` becomes ImageCondition tuples)
_REQUEST_ONLY = ("guider", "images", "prompt_enhanced")
_ENGINE = {f.name: f.default for f in fields(RenderRequest) if f.name not in _REQUEST_ONLY}
_GUIDER = {GUIDER_PREFIX + f.name: f.default for f in fields(GuiderSettings)}


def _engine(name: str, description: str) -> Any:  # a FieldInfo, typed as the field's value like Field()
    """A field whose default is the engine's (upstream LTX-2.3's)."""
    default = _GUIDER[name] if name.startswith(GUIDER_PREFIX) else _ENGINE[name]
    return Field(list(default) if isinstance(default, tuple) else default, description=description)


def id_problem(item_id: object) -> str | None:
    """Why ``item_id`` cannot name an output file inside the run folder, or None if it can."""
    if not isinstance(item_id, str) or not item_id.strip():
        return "is missing or empty; every item needs a unique id."
    if item_id.startswith(".") or ".." in item_id:
        return f"{item_id!r} is not a safe file name (no leading dot, no '..')."
    if any(c in UNSAFE_ID_CHARS or ord(c) < 32 or ord(c) == 127 for c in item_id):
        return f"{item_id!r} contains a path separator or control character; use letters, digits, '-' and '_'."
    if len(item_id) > MAX_ID_LENGTH:
        return f"is {len(item_id)} characters long; keep ids under {MAX_ID_LENGTH}."
    return None


class Item(BaseModel):
    """One clip of a manifest. After planning, ``seed`` and ``num_frames`` always have their final values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Text = Field(min_length=1, description="unique within the manifest; the video is written to videos/<id>.mp4")
    audio: Media = Field(
        min_length=1,
        description="audio file or URI (WAV, MP3, M4A/AAC, OGG, FLAC); a relative path is relative to the manifest",
    )
    audio_start_time: Number = _engine("audio_start_time", "seconds into the audio where the clip starts")
    audio_max_duration: Number | None = _engine("audio_max_duration", "longest audio window in seconds")
    image: Media | None = _engine("image", "reference image file or URI (the presenter); omitted: text to video")
    image_frame: Whole = _engine("image_frame", "frame the image conditions")
    image_strength: Number = _engine("image_strength", "0..1, how strongly the image is kept")
    images: Images | None = Field(None, description="several conditioning images; image is the one-image shorthand")
    prompt: Text = Field(min_length=1, description="what the shot shows")
    negative_prompt: Text = _engine("negative_prompt", "what to steer away from")
    seed: Whole | None = Field(None, description="omitted: derived from the run seed and the id")
    height: Whole = _engine("height", "final height in pixels, a multiple of 64")
    width: Whole = _engine("width", "final width in pixels, a multiple of 64")
    num_frames: Whole | None = _engine(
        "num_frames", "frames shown, rendered at the next 8k+1; omitted: enough for the whole audio"
    )
    frame_rate: Number = _engine("frame_rate", "frames per second")
    pipeline: PipelineField = _engine("pipeline", "two-stage (final render) or distilled (a draft: 8 unguided steps)")
    num_inference_steps: Whole = _engine("num_inference_steps", "stage-1 denoising steps")
    video_cfg_scale: Number = _engine("video_cfg_scale", "classifier-free guidance")
    video_stg_scale: Number = _engine("video_stg_scale", "spatio-temporal guidance")
    video_rescale_scale: Number = _engine("video_rescale_scale", "0..1 rescale after guidance")
    video_modality_scale: Number = _engine("video_modality_scale", "audio-to-video modality guidance")
    video_skip_step: Whole = _engine("video_skip_step", "guide every (skip_step+1)-th step only")
    video_stg_blocks: Blocks = _engine("video_stg_blocks", "transformer blocks perturbed for STG")
    distilled_lora_strength: Number = _engine("distilled_lora_strength", "stage-2 distilled LoRA strength, 0..2")
    audio_conditioning_noise_db: Number | None = _engine(
        "audio_conditioning_noise_db",
        "pink noise mixed into the audio the model hears, in dB relative to the speech RMS (e.g. -30), for clean "
        "TTS speech; the mp4 keeps the original audio. Omitted: off",
    )
    audio_conditioning_loudness_lufs: Number | None = _engine(
        "audio_conditioning_loudness_lufs",
        "normalise the audio the model hears to this integrated loudness (ITU-R BS.1770, e.g. -23); the mp4 keeps "
        "the original audio. Omitted: off",
    )
    loras: Loras = Field([], description="user LoRAs, both stages; an item's list replaces the defaults' list")
    enhance_prompt: Flag = _engine("enhance_prompt", "Gemma rewrites the prompt first (with the first image)")
    frozen_audio_sigma: FrozenSigma = _engine(
        "frozen_audio_sigma", "sigma the model is told for the frozen audio: zero (upstream 1.2.0) or step (1.0.0)"
    )
    window_seconds: Number = _engine(
        "window_seconds",
        "longest model window in seconds (at most 20, the model's positional range); a longer clip renders as "
        "several windows joined in speech pauses into one mp4",
    )
    context_frames: Whole = _engine(
        "context_frames", "8k+1 frames of each window that condition the next one (long_form continuous)"
    )
    long_form: LongFormField = _engine(
        "long_form",
        "continuous: each window continues the previous one's last frames (one chain per item); cuts: windows "
        "independent, each anchored on the image only, so one item's windows render on many GPUs at once",
    )
    tags: Labels = Field({}, description="free-form labels (language, campaign, customer); not part of the render")
    retry_of: Text | None = Field(None, description="set by ltx-batch retry-weak: the id of the item this re-renders")
    candidate: Whole | None = Field(None, description="set by ltx-batch retry-weak: this candidate's number, from 1")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if problem := id_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("images")
    @classmethod
    def _one_image_form(cls, value: list | None, info: ValidationInfo) -> list | None:
        if value is not None and info.data.get("image") is not None:
            raise ValueError(BOTH_IMAGE_FORMS)
        return value

    @property
    def values(self) -> dict:
        """Every field as plain Python values: a row of the plan and results tables."""
        return self.model_dump()

    @property
    def resolved_images(self) -> list[dict]:
        """Every conditioning image as ``{path, frame, strength, crf}``, whichever form the item used."""
        return [vars(image) for _, image in self.to_request().conditioning_images()]

    @property
    def first_image(self) -> str | None:
        """The first conditioning image's path or URI (the presenter: enhancement and identity scores use it)."""
        images = self.resolved_images
        return images[0]["path"] if images else None

    def to_request(
        self, local_paths: dict[str, str] | None = None, prompt_enhanced: str | None = None
    ) -> RenderRequest:
        """The engine request; ``local_paths`` maps media URIs to downloaded local copies; ``prompt_enhanced``
        is an enhancement already made for this item (an earlier attempt's)."""
        local = local_paths or {}
        values = map_media(self.model_dump(), lambda uri: local.get(uri, uri))
        values["loras"] = tuple(LoraSpec(**lora) for lora in values["loras"])
        guider = {name.removeprefix(GUIDER_PREFIX): values[name] for name in GUIDER_FIELDS}
        guider["stg_blocks"] = tuple(guider["stg_blocks"])
        images = tuple(ImageCondition(**image) for image in values["images"] or ())
        return RenderRequest(
            guider=GuiderSettings(**guider),
            images=images,
            prompt_enhanced=prompt_enhanced,
            **{name: values[name] for name in _ENGINE},
        )


KINDS = {name: _kind(info) for name, info in Item.model_fields.items()}
MEDIA_FIELDS = tuple(name for name, kind in KINDS.items() if kind.media)
GUIDER_FIELDS = tuple(name for name in KINDS if name.startswith(GUIDER_PREFIX))
# fields that hold lists of records, by their record model: errors name the index and the key (``images[1].frame``)
RECORDS: dict[str, type[BaseModel]] = {"images": ImageInput, "loras": Lora}
RECORD_KINDS = {name: {f: _kind(i) for f, i in m.model_fields.items()} for name, m in RECORDS.items()}
RECORD_MEDIA = {name: tuple(f for f, kind in kinds.items() if kind.media) for name, kinds in RECORD_KINDS.items()}


def map_media(values: dict, change: Callable[[str], object]) -> dict:
    """``values`` (an entry as written, or an item's values) with ``change`` applied to every input file path:
    the media fields and the paths inside records (each image's, each LoRA's). Other shapes pass unchanged,
    left for validation to report."""
    out = dict(values)
    for name in MEDIA_FIELDS:
        if isinstance(out.get(name), str) and out[name]:
            out[name] = change(out[name])
    for name, keys in RECORD_MEDIA.items():
        if isinstance(out.get(name), list):
            out[name] = [
                {**r, **{k: change(r[k]) for k in keys if _is_path(r.get(k))}} if isinstance(r, dict) else r
                for r in out[name]
            ]
    return out


def media_files(values: dict) -> list[str]:
    """Every input file (path or URI) an item's values name, media fields first, then records' paths."""
    found: list[str] = []
    map_media(values, found.append)
    return found


def media_paths(values: dict) -> list[tuple[str, str | None]]:
    """(field, path or URI) of every media input of an item's values; a media field left out is (field, None)."""
    out = []
    for name in MEDIA_FIELDS:
        value = values.get(name)
        if isinstance(value, list):
            out += [
                (f"{name}[{i}].path", v["path"])
                for i, v in enumerate(value)
                if isinstance(v, dict) and _is_path(v.get("path"))
            ]
        elif value is not None or name not in RECORDS:
            out.append((name, value))
    return out


def _is_path(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def arrow_schema(extra: tuple[pa.Field, ...] = ()) -> pa.Schema:
    """The item's columns (then ``extra``) as plans, results and Parquet manifests store them."""
    return pa.schema([pa.field(name, kind.arrow) for name, kind in KINDS.items()] + list(extra))


def flatten(entry: dict) -> dict:
    """Accept the nested ``video_guider: {...}`` form and return flat field names."""
    entry = dict(entry)
    nested = entry.pop(GUIDER_SECTION, None)
    if isinstance(nested, dict):
        for key, value in nested.items():
            entry.setdefault(GUIDER_PREFIX + key, value)
    elif nested is not None:
        entry[GUIDER_SECTION] = nested  # left for validation to report
    return entry


def merged(defaults: dict, entry: dict) -> dict:
    """The manifest's defaults, then the entry. Unknown defaults are left out: they are reported once, for the
    defaults, not once per item. An entry that writes its images in one form drops the other form's defaults."""
    base = {k: v for k, v in defaults.items() if k in KINDS}
    for form, other in (IMAGE_FORMS, IMAGE_FORMS[::-1]):
        if any(name in entry for name in form):
            base = {k: v for k, v in base.items() if k not in other}
    return {**base, **entry}
