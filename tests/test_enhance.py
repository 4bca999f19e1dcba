"""Prompt enhancement in the engine, on the tiny bundle (random Gemma: the text is gibberish, the mechanics are
real): once per (prompt, first image, seed), the enhanced text is what gets encoded, and a Gemma root that
cannot generate is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_request

from ltxcore.enhance import generation_problem
from ltxcore.errors import RenderInputError
from ltxcore.request import ImageCondition, RenderRequest


def _request(media, **overrides) -> RenderRequest:
    fields = dict(prompt="A teacher explains decimals", seed=21, enhance_prompt=True)
    return tiny_request(media["stereo_wav"], **{**fields, **overrides})


def test_each_key_is_enhanced_once_per_shard_with_the_first_image(engine, media):
    image = ImageCondition(media["image"])
    requests = [
        _request(media),
        _request(media),  # same key
        _request(media, seed=22),  # another seed
        _request(media, images=(image, ImageCondition(media["image"], 8))),  # with its first image
        _request(media, image=media["image"]),  # the same first image, written as the shorthand
        _request(media, enhance_prompt=False),  # not asked
        _request(media, seed=23, prompt_enhanced="given by an earlier attempt"),  # carried: not generated
    ]
    before = engine.enhancer.generated
    prepared = engine.prepare_prompts(requests)
    assert engine.enhancer.generated - before == 3
    texts = [r.prompt_enhanced for r in prepared]
    assert texts[0] == texts[1] != texts[2] and texts[3] == texts[4] and None not in texts[:5]
    assert texts[5] is None and texts[6] == "given by an earlier attempt"
    assert requests[3].enhance_key == (requests[3].prompt, media["image"], 21)
    assert all((r.encoded_prompt, r.negative_prompt) in engine.prompts for r in prepared)
    assert engine.prepare_prompts(requests) == prepared and engine.enhancer.generated - before == 3


def test_the_enhanced_prompt_is_what_gets_encoded(engine, media):
    result = engine.render(_request(media, seed=31), None, keep_latent=True)
    text = result.prompt_enhanced
    assert text and text != "A teacher explains decimals" and result.timings["enhance"] > 0
    generated = engine.enhancer.generated
    plain = engine.render(_request(media, seed=31, prompt=text, enhance_prompt=False), None, keep_latent=True)
    given = engine.render(_request(media, seed=31, prompt_enhanced=text), None, keep_latent=True)
    assert engine.enhancer.generated == generated and "enhance" not in given.timings
    assert torch.equal(result.video_latent, plain.video_latent) and torch.equal(given.video_latent, plain.video_latent)
    assert plain.prompt_enhanced is None


@pytest.fixture(scope="module")
def mute_gemma_root(tiny_bundle, tmp_path_factory) -> Path:
    """The tiny Gemma root without the chat template generation needs (prompt encoding does not)."""
    root = tmp_path_factory.mktemp("mute") / "gemma"
    shutil.copytree(tiny_bundle.gemma_root, root)
    config = json.loads((root / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (root / "tokenizer_config.json").write_text(json.dumps(config))
    return root


def test_a_gemma_root_that_cannot_generate_is_named(tiny_bundle, engine, mute_gemma_root, media, monkeypatch):
    assert generation_problem(tiny_bundle.gemma_root) is None
    assert "no chat template" in generation_problem(str(mute_gemma_root))
    monkeypatch.setattr(engine.enhancer, "problem", generation_problem(str(mute_gemma_root)))
    with pytest.raises(RenderInputError) as caught:
        engine.render(_request(media, seed=41), None)
    assert caught.value.field == "enhance_prompt" and "cannot generate text" in caught.value.message
