"""Several conditioning images in the engine: the one-element list is the shorthand, encoded latents are
cached exactly, and upstream's checks name the list index and the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_request
from ltx_pipelines.utils.media_io import load_image_conditioning
from PIL import Image

from ltxcore.errors import RenderInputError
from ltxcore.image_files import MIN_SIDE, decode_rgb, image_problem
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


def test_an_rgb_image_reads_exactly_as_upstream_reads_it(media):
    """What the cache hands its encoder, seen through an identity encoder: upstream's conditioning pixels."""
    cache = ImageLatents(torch.nn.Identity(), torch.bfloat16, torch.device("cpu"))
    for crf in (0, 33):
        ours = cache.get(ImageCondition(media["image"], crf=crf), 64, 96, "image")
        theirs = load_image_conditioning(media["image"], 64, 96, torch.bfloat16, torch.device("cpu"), crf=crf)
        assert torch.equal(ours, theirs)


def test_every_mode_reads_as_the_rgb_an_image_editor_exports(tmp_path):
    grey = np.arange(0, 240, 5, dtype=np.uint8).reshape(6, 8)
    cases = {
        "l.png": Image.fromarray(grey),
        "p.png": Image.fromarray(np.stack([grey] * 3, axis=-1)).convert("P", palette=Image.Palette.ADAPTIVE),
        "l16.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "i.tif": Image.fromarray(grey.astype(np.int32) * 257),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        assert np.array_equal(decode_rgb(str(tmp_path / name)), np.stack([grey] * 3, axis=-1)), name
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque: kept
    rgba[0, 1] = (200, 10, 10, 0)  # transparent: the white background
    rgba[1, 0] = (0, 0, 0, 128)  # half black over white: mid grey
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]]).save(tmp_path / "la.png")
    pixels = decode_rgb(str(tmp_path / "rgba.png"))
    assert pixels[0, 0].tolist() == [200, 10, 10] and pixels[0, 1].tolist() == pixels[1, 1].tolist() == [255] * 3
    assert pixels[1, 0].tolist() == [127] * 3
    assert decode_rgb(str(tmp_path / "la.png"))[:, :, 0].tolist() == [[200, 255], [127, 255]]


def test_a_palette_image_with_a_transparent_colour_conditions_a_render(engine, media, tmp_path):
    rgb = Image.open(media["image"]).convert("P")
    rgb.save(tmp_path / "presenter.png", transparency=0)
    assert Image.open(tmp_path / "presenter.png").has_transparency_data
    result = engine.render(_request(media, images=(ImageCondition(str(tmp_path / "presenter.png")),)), None)
    assert result.num_frames == 9


def test_the_smallest_image_the_engine_takes_is_the_one_validation_allows(engine, media, tmp_path):
    for width, height in ((1, 64), (2, 2)):
        path = tmp_path / f"{width}x{height}.png"
        Image.new("RGB", (width, height), (90, 120, 150)).save(path)
        allowed = image_problem(str(path), crf=33) is None
        try:
            engine.render(_request(media, images=(ImageCondition(str(path)),)), None)
            rendered = True
        except RenderInputError as e:
            assert "tuple index out of range" in e.message  # what the worker said before validation refused it
            rendered = False
        assert allowed == rendered == (min(width, height) >= MIN_SIDE)
    assert image_problem(str(tmp_path / "1x64.png"), crf=0) is None
