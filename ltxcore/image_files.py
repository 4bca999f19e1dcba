"""Conditioning image files: read as 8-bit RGB whatever their mode, and refused up front when too small.

Upstream reads an image as ``np.array(Image.open(path))[..., :3]``, which is right for RGB only: a palette
(P) or grayscale (L, I;16) image has no channel axis, so it fails deep inside the render, and an RGBA
image keeps whatever colour its transparent pixels happen to hold. Here every mode converts as an image
editor flattens it on export:

- palette and grayscale become RGB (grey levels kept);
- 16-bit (I;16, and I as Pillow opens 16-bit PNGs) scale 0..65535 onto 0..255;
- transparency (RGBA, LA, PA, or a palette's transparent colour) is composited on white, the background
  that editors flatten onto and that a cut-out portrait is usually shown on;
- an EXIF orientation (a phone photo's pixels stored sideways) is applied, as every viewer shows the photo.

An RGB image reads exactly as upstream reads it, so RGB inputs render bit-identically.

Nothing here imports torch: validation calls it before anything renders.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on
# Upstream re-compresses each image as one H.264 frame at its CRF; H.264 keeps colour per 2x2 block, so
# upstream crops each side down to an even length first, and a side of 1 pixel becomes 0 (the engine then
# fails with "tuple index out of range"). Without re-compression (crf 0) any size conditions.
MIN_SIDE = 2


def decode_rgb(path: str) -> np.ndarray:
    """The image at ``path`` as (height, width, 3) uint8 RGB; raises ``OSError`` or ``ValueError`` when it
    cannot be decoded."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)  # a phone photo stores its pixels sideways and says so in EXIF
        if image.mode == "I" or image.mode.startswith("I;16"):
            levels = np.asarray(image, dtype=np.float64) / 257.0
            image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8))  # L
        if image.has_transparency_data:
            flat = Image.new("RGBA", image.size, (*BACKGROUND, 255))
            image = Image.alpha_composite(flat, image.convert("RGBA"))
        return np.array(image.convert("RGB"))


def decoded_size(path: str) -> tuple[int, int] | str:
    """(height, width) of the image at ``path`` as it decodes, or why it cannot be decoded."""
    try:
        height, width, _ = decode_rgb(path).shape
    except Exception as e:  # PIL raises many types for a bad image
        return f"{path} is not a readable image: {e}."
    return height, width


def size_problem(path: str, height: int, width: int, crf: int) -> str | None:
    """Why an image of ``height`` x ``width``, re-compressed at ``crf``, cannot condition a clip, or None."""
    if crf > 0 and min(height, width) < MIN_SIDE:
        return (
            f"{path} is {width}x{height} pixels, too small to condition on: re-compressed as H.264 (crf {crf}), "
            f"which keeps colour per 2x2 block of pixels, an image needs at least {MIN_SIDE} pixels each way. "
            "Use a larger image (a presenter photo of a few hundred pixels), or crf: 0 to skip the re-compression."
        )
    return None


def image_problem(path: str, crf: int) -> str | None:
    """Why the image at ``path``, re-compressed at ``crf``, cannot condition a clip, or None if it can."""
    found = decoded_size(path)
    return found if isinstance(found, str) else size_problem(path, *found, crf)
