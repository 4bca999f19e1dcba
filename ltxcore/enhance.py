"""Prompt enhancement: Gemma rewrites a prompt before it is encoded, with upstream's own functions.

As upstream's ``generate_enhanced_prompt`` (ltx-pipelines): the text encoder's ``enhance_i2v`` (with the first
conditioning image, read by ``ltxcore.image_files`` in any mode and resized by upstream's helper) or
``enhance_t2v`` (without one) writes the rewrite, and upstream's ``clean_response`` tidies it. Two choices are ours:

- the sampling seed is the item's seed, as upstream's other pipelines pass theirs (its A2Vid leaves the default,
  42), so one enhancement serves every item with the same (prompt, first image, seed);
- the answer is at most upstream's 512 tokens, unless the Gemma root's ``generation_config.json`` sets
  ``max_new_tokens`` (the released root does not; the tiny test root does, since random weights never stop).

Generation also needs a chat template in the Gemma root's tokenizer, which prompt encoding does not.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from ltx_core.utils import find_matching_file
from ltx_pipelines.utils.helpers import clean_response
from ltx_pipelines.utils.media_io import resize_aspect_ratio_preserving
from transformers import AutoTokenizer

from ltxcore.errors import RenderInputError
from ltxcore.image_files import decode_rgb
from ltxcore.request import EnhanceKey, RenderRequest

MAX_NEW_TOKENS = 512  # upstream's enhance_t2v / enhance_i2v default
IMAGE_LONG_SIDE = 896  # upstream generate_enhanced_prompt's image_long_side


def chat_template_problem(tokenizer) -> str | None:
    """Why ``tokenizer`` cannot build the chat that enhancement sends, or None."""
    if getattr(tokenizer, "chat_template", None):
        return None
    return "its tokenizer has no chat template (tokenizer_config.json 'chat_template', or chat_template.jinja)"


def generation_problem(gemma_root: str) -> str | None:
    """Why the Gemma root cannot generate text, as ``enhance_prompt`` needs, or None. The tokenizer is loaded
    from the folder upstream loads it from."""
    try:
        folder = find_matching_file(gemma_root, "tokenizer.model").parent
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, StopIteration) as e:
        return f"its tokenizer cannot be loaded: {e}"
    return chat_template_problem(tokenizer)


def max_new_tokens(gemma_root: str) -> int:
    """The longest answer: ``max_new_tokens`` of the root's generation_config.json, else upstream's 512."""
    found = sorted(Path(gemma_root).rglob("generation_config.json"))
    if not found:
        return MAX_NEW_TOKENS
    try:
        return int(json.loads(found[0].read_text()).get("max_new_tokens", MAX_NEW_TOKENS))
    except (OSError, ValueError, TypeError):
        return MAX_NEW_TOKENS


class PromptEnhancer:
    """Generates enhanced prompts with one text encoder, and remembers the latest ``capacity`` of them, so a
    worker never generates the same key twice."""

    def __init__(self, text_encoder, max_new_tokens: int = MAX_NEW_TOKENS, capacity: int = 1024):
        self.text_encoder = text_encoder
        self.max_new_tokens = max_new_tokens
        self.problem = chat_template_problem(text_encoder.processor.tokenizer)
        self.capacity = capacity
        self._texts: OrderedDict[EnhanceKey, str] = OrderedDict()
        self.generated = 0  # enhancements written, and the seconds they took
        self.seconds = 0.0

    def missing(self, requests: list[RenderRequest]) -> list[EnhanceKey]:
        """The keys of ``requests`` that ask for enhancement, carry none and were not generated here yet."""
        keys = (r.enhance_key for r in requests if r.enhance_prompt and r.prompt_enhanced is None)
        return [key for key in dict.fromkeys(keys) if key not in self._texts]

    def enhanced(self, request: RenderRequest) -> RenderRequest:
        """``request`` with its enhanced prompt filled in where one is known (given, or generated here)."""
        if not request.enhance_prompt or request.prompt_enhanced is not None:
            return request
        text = self._texts.get(request.enhance_key)
        return request if text is None else replace(request, prompt_enhanced=text)

    def generate(self, key: EnhanceKey) -> str:
        """Enhance one key (Gemma must be on its device); raises ``RenderInputError`` when it cannot."""
        if self.problem:
            raise RenderInputError("enhance_prompt", f"the bundle's Gemma cannot generate text: {self.problem}.")
        prompt, image, seed = key
        encoder, limit = self.text_encoder, self.max_new_tokens
        start = time.perf_counter()
        try:
            with _rng_fork_on_cpu(encoder.model.device):
                if image is None:
                    text = encoder.enhance_t2v(prompt, max_new_tokens=limit, seed=seed)
                else:
                    pixels = resize_aspect_ratio_preserving(torch.tensor(decode_rgb(image)), IMAGE_LONG_SIDE)
                    text = encoder.enhance_i2v(prompt, pixels.to(torch.uint8), max_new_tokens=limit, seed=seed)
        except (OSError, ValueError, IndexError) as e:
            with_image = f" with the image {image}" if image else ""
            raise RenderInputError("enhance_prompt", f"Gemma could not enhance the prompt{with_image}: {e}.") from e
        text = clean_response(text)
        self.generated += 1
        self.seconds += time.perf_counter() - start
        self._texts[key] = text
        while len(self._texts) > self.capacity:
            self._texts.popitem(last=False)
        return text


@contextmanager
def _rng_fork_on_cpu(device: torch.device) -> Iterator[None]:
    """Upstream's enhancement seeds generation inside ``torch.random.fork_rng(devices=[model device])``, which
    takes the device for a CUDA one and fails for a model on the CPU. There, fork the CPU generator alone (which
    ``fork_rng`` always forks): the same isolation upstream means, on the generator a CPU model samples from."""
    if device.type != "cpu":
        yield
        return
    fork_rng = torch.random.fork_rng
    torch.random.fork_rng = lambda devices=None, **kwargs: fork_rng(devices=[], **kwargs)  # noqa: ARG005
    try:
        yield
    finally:
        torch.random.fork_rng = fork_rng
