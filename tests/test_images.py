"""Several conditioning images in the engine: the one-element list is the shorthand, encoded latents are
cached exactly, and upstream's checks name the list index and the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_request
from PIL import Image

from ltxcore.errors import RenderInputError
from ltxcore.images import ImageLatents
from ltxcore.request import ImageCondition, RenderRequest


def _request(media, **overrides) -> RenderRequest:
    return tiny_request(media["stereo_wav"], **{"prompt": "A presenter", "seed": 11, **overrides})


def test_one_element_list_renders_bit_identical_to_the_shorthand(engine, media):
    shorthand = _request(media, image=media["image"], image_frame=0, image_strength=0.8)
    listed = _request(media, images=(ImageCondition(media["image"], 0, 0.8),))
    first = engine.render(shorthand, None, keep_latent=True).video_latent
    second = engine.render(listed, None, keep_latent=True).video_latent
    assert torch.equal(first, second)


def test_cached_latent_is_the_latent_encoding_gives(engine, media, tmp_path):
    cache = ImageLatents(engine.video_encoder, torch.bfloat16, engine.device, capacity=1)
    image = ImageCondition(media["image"], crf=20)
    with torch.inference_mode():
        cold = cache.get(image, 64, 64, "image")
        warm = cache.get(image, 64, 64, "image")
        other = cache.get(image, 128, 128, "image")  # another size is another entry (and evicts the first)
        again = cache.get(image, 64, 64, "image")
    assert warm is cold and torch.equal(again, cold) and other.shape[-1] == 2 * cold.shape[-1]
    assert (cache.hits, cache.misses) == (1, 3)
    changed = tmp_path / "face.png"
    Image.open(media["image"]).save(changed)
    with torch.inference_mode():
        before = cache.get(ImageCondition(str(changed)), 64, 64, "image")
        Image.fromarray(np.zeros((96, 160, 3), dtype=np.uint8)).save(changed)  # new content, new size and mtime
        after = cache.get(ImageCondition(str(changed)), 64, 64, "image")
    assert not torch.equal(before, after)


@pytest.mark.parametrize(
    ("images", "field", "words"),
    [
        (
            (ImageCondition("IMG", 0), ImageCondition("IMG", 9)),
            "images[1].frame",
            "past the last frame of the clip (8)",
        ),
        ((ImageCondition("IMG", -1),), "images[0].frame", "must be a frame index >= 0"),
        ((ImageCondition("IMG", 0, 1.5),), "images[0].strength", "must be between 0 and 1, got 1.5"),
        ((ImageCondition("IMG", 0, 1.0, 60),), "images[0].crf", "from 0 to 51"),
        ((ImageCondition("/nonexistent/pose.png", 4),), "images[0].path", "does not exist"),
    ],
)
def test_image_checks_name_the_index_and_the_field(media, images, field, words):
    images = tuple(
        ImageCondition(media["image"] if i.path == "IMG" else i.path, i.frame, i.strength, i.crf) for i in images
    )
    problems = _request(media, images=images).problems()
    assert [(p.field, words in p.message) for p in problems] == [(field, True)]


def test_both_forms_at_once_is_an_error(media):
    request = _request(media, image=media["image"], images=(ImageCondition(media["image"]),))
    assert [p.field for p in request.problems()] == ["images"]


def test_an_undecodable_image_fails_its_render_naming_the_field(engine, media, tmp_path):
    fake = tmp_path / "pose.png"
    fake.write_bytes(b"not a png at all" * 8)
    request = _request(media, images=(ImageCondition(media["image"]), ImageCondition(str(fake), 4)))
    with pytest.raises(RenderInputError) as caught:
        engine.render(request, None)
    assert caught.value.field == "images[1].path" and str(fake) in caught.value.message
