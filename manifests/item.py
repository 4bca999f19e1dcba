"""The manifest item: one pydantic model from which everything about an item derives.

Validation, the Arrow columns of plans and results, the engine's ``RenderRequest``, the list of media
fields and the published JSON Schema all come from ``Item``. Names and defaults are upstream LTX-2.3's,
taken from the engine's request. The video guider's fields may be written nested
(``video_guider: {cfg_scale: 3}``) or flat (``video_cfg_scale: 3``); the flat names are the canonical
column names in Parquet and in the results table.

Adding a field means adding one line to ``Item`` (and a field of the same name to ``RenderRequest`` when
the engine takes it, which ``to_request`` then fills by name).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Annotated, get_args

import pyarrow as pa
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.fields import FieldInfo

from ltxcore.request import GuiderSettings, RenderRequest

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
Blocks = Annotated[list[Annotated[int, Strict()]], Kind("a list of whole numbers", pa.list_(pa.int64()))]
Labels = Annotated[
    dict[Annotated[str, Strict()], Annotated[str, Strict()]],
    Kind("a mapping of labels", pa.map_(pa.string(), pa.string())),
]

_ENGINE = {f.name: f.default for f in fields(RenderRequest) if f.name != "guider"}
_GUIDER = {GUIDER_PREFIX + f.name: f.default for f in fields(GuiderSettings)}


def _engine(name: str, description: str) -> FieldInfo:
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
    prompt: Text = Field(min_length=1, description="what the shot shows")
    negative_prompt: Text = _engine("negative_prompt", "what to steer away from")
    seed: Whole | None = Field(None, description="omitted: derived from the run seed and the id")
    height: Whole = _engine("height", "final height in pixels, a multiple of 64")
    width: Whole = _engine("width", "final width in pixels, a multiple of 64")
    num_frames: Whole | None = _engine("num_frames", "8k+1 frames; omitted: the longest clip that fits the audio")
    frame_rate: Number = _engine("frame_rate", "frames per second")
    num_inference_steps: Whole = _engine("num_inference_steps", "stage-1 denoising steps")
    video_cfg_scale: Number = _engine("video_cfg_scale", "classifier-free guidance")
    video_stg_scale: Number = _engine("video_stg_scale", "spatio-temporal guidance")
    video_rescale_scale: Number = _engine("video_rescale_scale", "0..1 rescale after guidance")
    video_modality_scale: Number = _engine("video_modality_scale", "audio-to-video modality guidance")
    video_skip_step: Whole = _engine("video_skip_step", "guide every (skip_step+1)-th step only")
    video_stg_blocks: Blocks = _engine("video_stg_blocks", "transformer blocks perturbed for STG")
    distilled_lora_strength: Number = _engine("distilled_lora_strength", "stage-2 distilled LoRA strength, 0..2")
    tags: Labels = Field({}, description="free-form labels (language, campaign, customer); not part of the render")
    retry_of: Text | None = Field(None, description="set by ltx-batch retry-weak: the id of the item this re-renders")
    candidate: Whole | None = Field(None, description="set by ltx-batch retry-weak: this candidate's number, from 1")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if problem := id_problem(value):
            raise ValueError(problem)
        return value

    @property
    def values(self) -> dict:
        """Every field as plain Python values: a row of the plan and results tables."""
        return self.model_dump()

    def to_request(self, local_paths: dict[str, str] | None = None) -> RenderRequest:
        """The engine request; ``local_paths`` maps media URIs to downloaded local copies."""
        local = local_paths or {}
        values = self.model_dump()
        for name in MEDIA_FIELDS:
            values[name] = local.get(values[name], values[name]) if values[name] else None
        guider = {name.removeprefix(GUIDER_PREFIX): values[name] for name in GUIDER_FIELDS}
        guider["stg_blocks"] = tuple(guider["stg_blocks"])
        return RenderRequest(guider=GuiderSettings(**guider), **{name: values[name] for name in _ENGINE})


def _kind(info: FieldInfo) -> Kind:
    nested = [meta for arg in get_args(info.annotation) for meta in getattr(arg, "__metadata__", ())]  # T | None
    return next(meta for meta in (*info.metadata, *nested) if isinstance(meta, Kind))


KINDS = {name: _kind(info) for name, info in Item.model_fields.items()}
MEDIA_FIELDS = tuple(name for name, kind in KINDS.items() if kind.media)
GUIDER_FIELDS = tuple(name for name in KINDS if name.startswith(GUIDER_PREFIX))


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
    defaults, not once per item."""
    return {**{k: v for k, v in defaults.items() if k in KINDS}, **entry}


def unknown_field(name: str, known: list[str]) -> str:
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    return f"is not a known field.{hint}"


def check_item(defaults: dict, entry: dict) -> tuple[Item | None, list[tuple[str, str]]]:
    """The item an entry makes with the manifest's defaults, or every problem with it as (field, message):
    unknown fields first, then missing ones, then wrong types, one message per field."""
    data = merged(defaults, entry)
    try:
        return Item.model_validate(data), []
    except ValidationError as e:
        errors = {}
        for error in e.errors():
            errors.setdefault(str(error["loc"][0]), error)
    problems = [(name, _message(name, error, data.get(name))) for name, error in errors.items()]
    return None, sorted(problems, key=lambda p: 0 if p[0] not in KINDS else 1 if p[1] == "is required." else 2)


def _message(name: str, error: dict, value: object) -> str:
    """Pydantic's error for one field, in this project's words."""
    if error["type"] == "extra_forbidden":
        return unknown_field(name, [*KINDS, GUIDER_SECTION])
    if Item.model_fields[name].is_required() and value in (None, ""):
        return "is required."
    if value is None:
        return "must not be empty."
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return f"must be {KINDS[name].what}, got {value!r}."
