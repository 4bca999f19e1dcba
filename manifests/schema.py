"""The item schema: one field table that serves YAML manifests, Parquet manifests and the results table.

Names and defaults are upstream LTX-2.3's. The video guider's fields may be written nested
(``video_guider: {cfg_scale: 3}``) or flat (``video_cfg_scale: 3``); the flat names are the canonical
column names in Parquet and in the results table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pyarrow as pa

from ltxcore.request import GuiderSettings, RenderRequest

GUIDER_PREFIX = "video_"
GUIDER_SECTION = "video_guider"


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # str | int | float | list | dict, what the value must be after loading
    arrow: pa.DataType
    help: str
    optional: bool = False  # may be None (absent) after defaults are applied
    media: bool = False  # a path or URI of an input file


_REQUEST_DEFAULTS = {f.name: f.default for f in fields(RenderRequest) if f.name != "guider"}
_GUIDER_DEFAULTS = {f.name: f.default for f in fields(GuiderSettings)}

ITEM_FIELDS: tuple[Field, ...] = (
    Field("id", str, pa.string(), "unique; used in output names"),
    Field("audio", str, pa.string(), "audio file or URI (WAV, MP3, M4A/AAC, OGG, FLAC)", media=True),
    Field("audio_start_time", float, pa.float64(), "seconds into the audio where the clip starts"),
    Field("audio_max_duration", float, pa.float64(), "longest audio window in seconds", optional=True),
    Field("image", str, pa.string(), "reference image (the presenter)", optional=True, media=True),
    Field("image_frame", int, pa.int64(), "frame the image conditions"),
    Field("image_strength", float, pa.float64(), "0..1, how strongly the image is kept"),
    Field("prompt", str, pa.string(), "what the shot shows"),
    Field("negative_prompt", str, pa.string(), "what to steer away from"),
    Field("seed", int, pa.int64(), "omitted: derived from the run seed and the id", optional=True),
    Field("height", int, pa.int64(), "final height, a multiple of 64"),
    Field("width", int, pa.int64(), "final width, a multiple of 64"),
    Field("num_frames", int, pa.int64(), "8k+1; omitted: the longest that fits the audio", optional=True),
    Field("frame_rate", float, pa.float64(), "frames per second"),
    Field("num_inference_steps", int, pa.int64(), "stage-1 steps"),
    Field("video_cfg_scale", float, pa.float64(), "classifier-free guidance"),
    Field("video_stg_scale", float, pa.float64(), "spatio-temporal guidance"),
    Field("video_rescale_scale", float, pa.float64(), "0..1 rescale after guidance"),
    Field("video_modality_scale", float, pa.float64(), "audio-to-video modality guidance"),
    Field("video_skip_step", int, pa.int64(), "guide every (skip_step+1)-th step only"),
    Field("video_stg_blocks", list, pa.list_(pa.int64()), "transformer blocks perturbed for STG"),
    Field("distilled_lora_strength", float, pa.float64(), "stage-2 distilled LoRA strength"),
    Field("tags", dict, pa.map_(pa.string(), pa.string()), "free-form labels: language, campaign, customer"),
)
FIELDS = {f.name: f for f in ITEM_FIELDS}
GUIDER_FIELDS = tuple(f.name for f in ITEM_FIELDS if f.name.startswith(GUIDER_PREFIX))


def _default(name: str) -> object:
    if name.startswith(GUIDER_PREFIX):
        value = _GUIDER_DEFAULTS[name.removeprefix(GUIDER_PREFIX)]
        return list(value) if isinstance(value, tuple) else value
    if name in ("id", "audio", "prompt", "seed"):  # a missing seed is derived from the run seed and the id
        return None
    if name == "tags":
        return {}
    return _REQUEST_DEFAULTS[name]


DEFAULTS: dict[str, object] = {f.name: _default(f.name) for f in ITEM_FIELDS if f.name not in ("id",)}
REQUIRED = ("id", "audio", "prompt")


UNSAFE_ID_CHARS = set('/\\:*?"<>|')
MAX_ID_LENGTH = 128


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


def merge(defaults: dict, entry: dict) -> dict:
    """Schema defaults, then the manifest's defaults, then the entry: known fields only."""
    known = lambda d: {k: v for k, v in d.items() if k in FIELDS}  # noqa: E731
    return {**DEFAULTS, **known(defaults), **known(entry)}


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


@dataclass(frozen=True)
class Item:
    """A fully resolved manifest item: every field has its final value (seed and num_frames included)."""

    values: dict

    def __getattr__(self, name: str):
        if name == "values" or name.startswith("__"):  # not yet set while unpickling
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def to_request(self, local_paths: dict[str, str] | None = None) -> RenderRequest:
        """The engine request; ``local_paths`` maps media URIs to downloaded local copies."""
        local = local_paths or {}
        v = self.values
        guider = GuiderSettings(**{
            name.removeprefix(GUIDER_PREFIX): tuple(v[name]) if name == "video_stg_blocks" else v[name]
            for name in GUIDER_FIELDS
        })  # fmt: skip
        return RenderRequest(
            audio=local.get(v["audio"], v["audio"]),
            image=local.get(v["image"], v["image"]) if v["image"] else None,
            guider=guider,
            **{k: v[k] for k in _REQUEST_DEFAULTS if k not in ("audio", "image")},
        )


def arrow_schema(extra: tuple[pa.Field, ...] = ()) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.arrow) for f in ITEM_FIELDS] + list(extra))
