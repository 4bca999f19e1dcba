"""An entry checked against the item model (``manifests.item``), each problem in the words of the person who
wrote it: an unknown field with the one it misspells, a missing one, a wrong type with the value found.
"""

from __future__ import annotations

import difflib
import functools

from pydantic import BaseModel, ValidationError

from manifests.item import GUIDER_FIELDS, GUIDER_PREFIX, GUIDER_SECTION, KINDS, RECORD_KINDS, RECORDS, Item, merged
from manifests.typos import misspelt


def unknown_field(name: str, known: list[str]) -> str:
    """``is not a known field.``, with the closest of ``known`` as a hint (for item fields, ``typo_of``'s)."""
    typo = typo_of(name) if GUIDER_SECTION in known else None
    guess = [typo] if typo else difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    return f"is not a known field.{hint}"


_TYPO_TARGETS = {
    **{name: name for name in (*KINDS, GUIDER_SECTION) if len(name) >= 4},
    **{name.removeprefix(GUIDER_PREFIX): name for name in GUIDER_FIELDS},
}


@functools.lru_cache(maxsize=4096)  # asked per row of a manifest for the same few columns
def typo_of(name: str) -> str | None:
    """The item field that ``name`` (a key or column that is no item field) misspells, or None when it is a
    column of the user's own (then kept as a tag): ``manifests.typos.misspelt`` against the item's fields, the
    nested guider section, and the guider's fields without their ``video_`` prefix (``cfg_scale`` written flat
    means ``video_cfg_scale``); names under 4 letters (``id``) are too short to guess from."""
    return misspelt(name, _TYPO_TARGETS, {*KINDS, GUIDER_SECTION})


def check_item(defaults: dict, entry: dict) -> tuple[Item | None, list[tuple[str, str]]]:
    """The item an entry makes with the manifest's defaults, or every problem with it as (field, message):
    unknown fields first, then missing ones, then wrong types, one message per field."""
    data = merged(defaults, entry)
    try:
        return Item.model_validate(data), []
    except ValidationError as e:
        errors = {}
        for error in e.errors():
            errors.setdefault(_location(error["loc"]), error)
    problems = [(name, _problem(name, error, data)) for name, error in errors.items()]
    return None, sorted(problems, key=lambda p: 0 if p[0] not in KINDS else 1 if p[1] == "is required." else 2)


def _location(loc: tuple) -> str:
    """``images[1].frame`` for an error inside a list of mappings, else the field's name."""
    field, *rest = loc
    if field in RECORDS and rest and isinstance(rest[0], int):
        return f"{field}[{rest[0]}]" + (f".{rest[1]}" if len(rest) > 1 else "")
    return str(field)


def _problem(name: str, error: dict, data: dict) -> str:
    """The message for one error, about a field or a key of a list element (``images[1].frame``)."""
    field, _, key = name.partition("[")
    if not key:
        return _message(Item, KINDS, name, error, data.get(name), [*KINDS, GUIDER_SECTION])
    index, _, key = key.partition("]")
    element, key = data[field][int(index)], key.removeprefix(".")
    model = RECORDS[field]
    if not key:
        return f"must be a mapping with {', '.join(model.model_fields)}, got {element!r}."
    return _message(model, RECORD_KINDS[field], key, error, element.get(key), list(model.model_fields))


def _message(model: type[BaseModel], kinds: dict, name: str, error: dict, value: object, known: list) -> str:
    """Pydantic's error for one field of ``model``, in this project's words."""
    if error["type"] == "extra_forbidden":
        return unknown_field(name, known)
    if model.model_fields[name].is_required() and value in (None, ""):
        return "is required."
    if value is None:
        return "must not be empty."
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return f"must be {kinds[name].what}, got {value!r}."
