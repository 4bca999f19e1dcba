"""Conditioning images as upstream's A2Vid applies them, with their encoded latents cached.

Upstream (``combined_image_conditionings``) loads each image at the stage's size, re-compresses it as one
H.264 frame at its CRF, encodes it with the video VAE, and conditions frame 0 by latent index (it replaces the
first latent frame) and any later frame as a keyframe (its tokens join the sequence at that frame's time).
Files are read by ``ltxcore.image_files`` (any mode, converted to RGB). A batch conditions thousands of clips
on the same few images at the same two sizes, so the encoded latent is kept: the key holds everything the
latent depends on (the file's path, size and mtime, the target size and the CRF), so a hit returns exactly
what encoding again would.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from ltx_core.conditioning import ConditioningItem, VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
from ltx_pipelines.utils.media_io import normalize_latent, preprocess, resize_and_center_crop

from ltxcore.errors import RenderInputError
from ltxcore.image_files import decode_rgb
from ltxcore.local_files import file_identity
from ltxcore.request import ImageCondition


class ImageLatents:
    """Encoded conditioning images, least recently used evicted first."""

    def __init__(self, encoder: torch.nn.Module, dtype: torch.dtype, device: torch.device, capacity: int = 32):
        self.encoder, self.dtype, self.device = encoder, dtype, device
        self.capacity = capacity
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, image: ImageCondition, height: int, width: int, field: str) -> torch.Tensor:
        """The VAE latent of ``image`` at ``height`` x ``width``; ``field`` names it in errors."""
        try:
            key = (file_identity(image.path), height, width, image.crf)
            latent = self._entries.get(key)
            if latent is None:
                pixels = self._pixels(image, height, width)
        except (OSError, ValueError, IndexError) as e:
            raise RenderInputError(field, f"{image.path} could not be read as an image: {e}.") from e
        if latent is None:
            self.misses += 1
            latent = self.encoder(pixels)
            self._entries[key] = latent
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self.hits += 1
        self._entries.move_to_end(key)
        return latent

    def _pixels(self, image: ImageCondition, height: int, width: int) -> torch.Tensor:
        """Upstream's ``load_image_conditioning``, step by step, reading the file with ``decode_rgb`` (any mode,
        not only RGB) in place of upstream's ``decode_image``."""
        pixels = torch.tensor(
            preprocess(decode_rgb(image.path), crf=image.crf), dtype=torch.float32, device=self.device
        )
        return normalize_latent(resize_and_center_crop(pixels, height, width), self.device, self.dtype)

    def conditions(
        self, images: list[tuple[str, ImageCondition]], height: int, width: int, keyframes: bool = False
    ) -> list[ConditioningItem]:
        """Upstream's conditioning items for ``images`` (field, image) at one stage's size, in list order;
        ``keyframes``: frame 0 too is a keyframe (latent index 0 holds something else: a window's context)."""
        out: list[ConditioningItem] = []
        for field, image in images:
            latent = self.get(image, height, width, f"{field}.path" if field.startswith("images") else field)
            strength = image.strength
            if image.frame == 0 and not keyframes:
                out.append(VideoConditionByLatentIndex(latent=latent, strength=strength, latent_idx=0))
            else:
                out.append(VideoConditionByKeyframeIndex(keyframes=latent, frame_idx=image.frame, strength=strength))
        return out
