"""Validation that knows the model and the GPU: stg_blocks against the checkpoint's depth (read from its
header), the stage-2 token bound, and the warning for a video much longer than its audio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import write_tone
from safetensors import safe_open

from ltxcore.checkpoint_header import read_safetensors_header, tensor_shapes, transformer_layer_count
from ltxcore.errors import RenderInputError
from ltxcore.request import GuiderSettings, RenderRequest
from ltxcore.token_bound import MAX_TOKENS, video_tokens
from manifests.load import load_manifest
from manifests.validate import check, validate
from ray_jobs.cli import main as cli
from ray_jobs.render import main as render


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> str:
    return write_tone(tmp_path_factory.mktemp("audio") / "voice.wav", 2.0)


def _manifest(tmp_path: Path, audio: str, **fields) -> Path:
    body = {"items": [{"id": "a", "audio": audio, "prompt": "A presenter", **fields}]}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_the_header_gives_every_shape_and_the_depth_without_loading(tiny_bundle):
    shapes = tensor_shapes(read_safetensors_header(Path(tiny_bundle.checkpoint_path), "checkpoint_path"))
    with safe_open(tiny_bundle.checkpoint_path, "pt") as f:
        assert shapes == {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    assert transformer_layer_count(tiny_bundle.checkpoint_path) == 2
    assert transformer_layer_count(tiny_bundle.distilled_lora) is None  # LoRA keys carry no model. prefix


def test_stg_blocks_are_checked_against_the_bundle_with_the_engines_message(tiny_bundle, engine, tmp_path, audio):
    manifest = _manifest(tmp_path, audio, num_frames=17, video_guider={"stg_blocks": [99]})
    assert validate(load_manifest(manifest)) == []  # without the model, any block index passes
    with pytest.raises(RenderInputError) as engine_error:
        engine.resolve(RenderRequest(audio=audio, prompt="p", guider=GuiderSettings(stg_blocks=(99,))))
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    expected = f"item 'a' (line 2), field 'video_stg_blocks': {engine_error.value.message}"
    assert engine_error.value.message == "has invalid block indices [99] (the model has blocks 0..1)."
    with_model = replace(load_manifest(manifest), model={"bundle": bundle})
    assert [str(p) for p in validate(with_model)] == [expected]


def test_validate_takes_the_bundle_on_the_command_line(tiny_bundle, tmp_path, audio, capsys):
    manifest = _manifest(tmp_path, audio, num_frames=17, video_guider={"stg_blocks": [1, 2]})
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    assert cli(["validate", str(manifest)]) == 0
    assert cli(["validate", str(manifest), "--bundle", bundle]) == 1
    assert "has invalid block indices [2] (the model has blocks 0..1)." in capsys.readouterr().out


def test_sizes_above_the_token_bound_are_refused_with_the_numbers(tmp_path, audio):
    assert video_tokens(97, 512, 768) == 13 * 16 * 24 == 4992  # the reference clip
    assert MAX_TOKENS == 188_000
    huge = load_manifest(_manifest(tmp_path, audio, height=64000, width=64000, num_frames=97))
    assert [str(p) for p in validate(huge)] == [
        "item 'a' (line 2), field 'height': 64000x64000 at 97 frames is 52,000,000 video tokens at stage 2 "
        "(13 x 2000 x 2000), above the bound of 188,000 (what fits an H200's 140.4 GiB: 34.1 GiB of weights and "
        "buffers plus about 0.5 MiB of activations per token). Lower the size or the frame count, or change the "
        "bound with --max-tokens."
    ]
    assert validate(huge, max_tokens=52_000_000) == []
    # frames left to the audio (2 s at 24 fps: shows 48 frames, renders the rung 49, 7 latent frames): 7 x 8 x 12
    derived = load_manifest(_manifest(tmp_path, audio, height=256, width=384))
    assert validate(derived, max_tokens=672) == []
    [problem] = validate(derived, max_tokens=671)
    assert problem.message.startswith("384x256 at 49 frames is 672 video tokens at stage 2 (7 x 8 x 12)")
    assert "above the bound of 671 (set with --max-tokens)" in problem.message


def test_render_refuses_above_the_bound_before_anything_renders(local_ray, tiny_bundle, tmp_path, audio, capsys):
    manifest = _manifest(tmp_path, audio, height=256, width=384, num_frames=17)
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    args = [str(manifest), "--out", str(tmp_path / "run"), "--bundle", bundle, "--max-tokens", "100"]
    assert render(args) == 2 and not (tmp_path / "run").exists()
    assert "is 288 video tokens at stage 2" in capsys.readouterr().err


def test_a_video_much_longer_than_its_audio_is_a_warning_not_an_error(tmp_path, audio, capsys):
    long = load_manifest(_manifest(tmp_path, audio, num_frames=121, frame_rate=24))
    problems, warnings = check(long)
    assert problems == [] and [str(w) for w in warnings] == [
        "item 'a' (line 2), field 'num_frames': 121 frames at 24 fps last 5.04 s, 3.04 s longer than the audio "
        "window (2.00 s); that part is rendered over silence. Leave num_frames out to fit the clip to the audio."
    ]
    assert cli(["validate", str(long.path)]) == 0
    assert "1 warning(s), not errors:" in capsys.readouterr().out
    within_margin = load_manifest(_manifest(tmp_path, audio, num_frames=57, frame_rate=24))  # 2.38 s
    assert check(within_margin) == ([], [])
    windowed = load_manifest(_manifest(tmp_path, audio, num_frames=49, frame_rate=24, audio_max_duration=1.0))
    assert [w.field for w in check(windowed)[1]] == ["num_frames"]
