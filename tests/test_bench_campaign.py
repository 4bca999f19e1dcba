"""The campaign benchmark's manifests (``tools/bench_campaign.py``), built small: the project's own loader and
validator take them without a problem, their users' columns become tags with one warning, and five distinct
audio files (four formats) are spoken."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltxcore.media import probe_audio
from manifests.load import load_manifest
from manifests.validate import check
from tools.bench_campaign import build_parquet_campaign, build_yaml_campaign

ITEMS = 200


@pytest.mark.parametrize("build", [build_parquet_campaign, build_yaml_campaign])
def test_campaign_manifest_is_valid_with_its_columns_as_tags(build, tmp_path: Path):
    manifest = load_manifest(build(tmp_path, ITEMS))
    problems, warnings = check(manifest)
    assert problems == []
    assert [str(w) for w in warnings] == [
        "manifest: columns city, segment, language are not item fields: kept as tags."
    ]
    assert len(manifest.entries) == ITEMS
    assert manifest.defaults["height"] == 512 and manifest.defaults["width"] == 768
    assert Path(manifest.defaults["image"]).is_file()
    first = manifest.entries[0].data
    assert first["tags"] == {"city": "Lisbon", "segment": "new", "language": "de"}
    assert "Lisbon" in first["prompt"] and "Ada" in first["prompt"]
    assert len({e.data["prompt"] for e in manifest.entries}) == ITEMS
    audio = {e.data["audio"] for e in manifest.entries}
    assert len(audio) == 5 and all(Path(a).is_file() for a in audio)
    codecs = {Path(a).suffix: probe_audio(a).codec for a in audio}
    assert codecs[".wav"] == "pcm_s16le" and codecs[".flac"] == "flac"
    assert probe_audio(next(a for a in audio if a.endswith(".wav"))).duration == pytest.approx(5.0, abs=0.05)
