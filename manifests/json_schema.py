"""The published JSON Schema of a manifest file, derived from the item and model-section models.

``ltx-batch schema > ltx-batch.schema.json`` writes it. A YAML manifest whose first line is
``# yaml-language-server: $schema=ltx-batch.schema.json`` is then completed and checked as it is typed
by editors that speak JSON Schema (VS Code with the YAML extension, JetBrains IDEs). The schema sees
names and types; ``ltx-batch validate`` also checks ranges, media files and duplicate ids.

Items and defaults allow item fields only, although the loader keeps any other key as a tag (with one
warning, ``manifests.load``): a schema cannot tell a column of the user's own (``city``) from a misspelt field
(``promt``), and an editor that marks both lets the person writing see the misspelt one as it is typed.
"""

from __future__ import annotations

import json

from pydantic.json_schema import GenerateJsonSchema

from manifests.item import GUIDER_FIELDS, GUIDER_PREFIX, GUIDER_SECTION, Item
from manifests.model_section import ModelSection


class _Untitled(GenerateJsonSchema):
    """Descriptions say what a field is; pydantic's generated titles would only repeat its name."""

    def field_title_should_be_set(self, schema) -> bool:
        return False


def _schema(model: type) -> dict:
    schema = model.model_json_schema(schema_generator=_Untitled)
    schema.pop("title", None)
    return schema


def manifest_schema() -> dict:
    """A whole manifest (YAML, or the YAML beside a Parquet manifest): its top-level keys as the loader
    reads them, the model section, defaults and items."""
    item = _schema(Item)
    fields = item["properties"]
    records = item.get("$defs", {})  # the record models (Lora), referenced from defaults and items alike
    guider = {
        "type": "object",
        "description": f"the video guider's fields, nested: cfg_scale here is {GUIDER_PREFIX}cfg_scale",
        "properties": {name.removeprefix(GUIDER_PREFIX): fields[name] for name in GUIDER_FIELDS},
        "additionalProperties": False,
    }
    settings = {"type": "object", "properties": {**fields, GUIDER_SECTION: guider}, "additionalProperties": False}
    model = _schema(ModelSection)
    model["type"] = ["object", "null"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": item.get("$defs", {}),  # sub-models the item's fields refer to (an image of images)
        "title": "ltx-batch manifest",
        "description": "Clips to render with LTX-2.3: a model section, defaults for every item, and the items.",
        "type": "object",
        "properties": {
            "run_seed": {"type": "integer", "default": 0, "description": "items without a seed derive one from it"},
            "model": model,
            "defaults": {
                **settings,
                "type": ["object", "null"],
                "description": "item fields every item gets unless it sets them itself",
            },
            "items": {
                "type": "array",
                "description": f"one entry per clip; {', '.join(item['required'])} are required, here or in defaults",
                "items": {**settings, "required": ["id"]},
            },
        },
        "additionalProperties": False,
        **({"$defs": records} if records else {}),
    }


def schema_text() -> str:
    """The schema as ``ltx-batch schema`` prints it and ``ltx-batch.schema.json`` holds it."""
    return json.dumps(manifest_schema(), indent=2) + "\n"
