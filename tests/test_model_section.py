"""The model section: one bundle identity for local folders and URIs, built from the one file identity."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ltxcore.bundle import RELEASED_NAMES
from ltxcore.errors import BundleError
from manifests.model_section import resolve_model
from storage.fs import file_identity


def test_local_and_uri_bundles_have_one_identity(tiny_bundle):
    folder = Path(tiny_bundle.checkpoint_path).parent
    local = resolve_model({"bundle": str(folder)}, "none")
    remote = resolve_model({"bundle": f"file://{folder}"}, "none")  # a URI: checked by the workers, not here
    assert local.identity == remote.identity and local.identity["quantization"] == "none"
    files = local.identity["files"]
    assert list(files) == list(RELEASED_NAMES)
    [checkpoint] = files["checkpoint_path"]
    stat = os.stat(tiny_bundle.checkpoint_path)
    assert checkpoint == {"name": RELEASED_NAMES["checkpoint_path"], "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    assert checkpoint == {"name": checkpoint["name"], **file_identity(tiny_bundle.checkpoint_path)}
    assert {"config.json", "tokenizer.model"} <= {Path(f["name"]).name for f in files["gemma_root"]}


def test_a_replaced_file_changes_the_identity(tiny_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(Path(tiny_bundle.checkpoint_path).parent, folder)
    before = resolve_model({"bundle": str(folder)}, "fp8-cast").identity
    assert resolve_model({"bundle": str(folder)}, "fp8-cast").identity == before
    lora = folder / RELEASED_NAMES["distilled_lora"]
    os.utime(lora, ns=(lora.stat().st_atime_ns, lora.stat().st_mtime_ns + 1_000_000))
    assert resolve_model({"bundle": str(folder)}, "fp8-cast").identity != before


def test_an_incomplete_section_names_what_is_missing():
    with pytest.raises(BundleError, match="lacks distilled_lora, spatial_upsampler_path, gemma_root"):
        resolve_model({"checkpoint_path": "/models/ltx.safetensors"}, "none")
