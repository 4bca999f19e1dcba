"""``--set FIELD=VALUE``: defaults for every item, given on the command line (render, resume, retry-weak)."""

from __future__ import annotations

import yaml

from manifests.load import ManifestError


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict:
    """Each ``FIELD=VALUE`` as a field and its value, read as YAML (``20``, ``true``, ``[a, b]``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ManifestError(f"--set {pair!r}: write FIELD=VALUE, e.g. --set num_inference_steps=20")
        out[key.strip()] = yaml.safe_load(value)
    return out
