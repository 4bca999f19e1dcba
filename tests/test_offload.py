"""The streamed text path: every weight is used only inside its own module's forward, so streaming
module by module is complete, and results are unchanged.

On the CPU the device is the host, so where a weight lives cannot be seen by itself. The tests make it seen
through torch's public API only: a weight emptied by the test fails any use until the stream places it again,
and a weight the test replaces by a copy of its own keeps that copy unless the stream moves it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ltxcore.loading import build_embeddings_processor, build_text_encoder
from ltxcore.offload import StreamedModule
from ltxcore.text import PromptEncoding, encode_prompts

PROMPTS = ["A presenter speaks to the camera", "blurry, low quality", "Hola a todos"]
CPU = torch.device("cpu")


def _streamed_text_path(bundle) -> tuple[StreamedModule, Callable[[list[str]], list[PromptEncoding]]]:
    """The text path on the host behind a stream to the CPU, and the encoding of prompts through it."""
    encoder, embeddings = build_text_encoder(bundle, CPU), build_embeddings_processor(bundle, CPU)
    stream = StreamedModule(torch.nn.ModuleList([encoder, embeddings]), CPU)
    return stream, lambda prompts: encode_prompts(prompts, encoder, embeddings, CPU)


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    """A module's own weights, not its children's: what the stream places with the module's forward."""
    return [*module.parameters(recurse=False), *module.buffers(recurse=False)]


def _set(stream: StreamedModule, change: Callable[[torch.Tensor], torch.Tensor]) -> None:
    for unit in stream.units:
        for t in _weights(unit):
            t.data = change(t.data)


def _empty(module: torch.nn.Module, *_hook_args) -> None:
    """Empty the module's own weights: until something places them again, any use of them fails loudly."""
    for t in _weights(module):
        t.data = t.data.new_empty(0)


def _pointers(stream: StreamedModule) -> dict[int, int]:
    return {id(t): t.data_ptr() for unit in stream.units for t in _weights(unit)}


def _assert_same(got: list[PromptEncoding], expected: list[PromptEncoding]) -> None:
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)


def test_streamed_text_path_uses_each_weight_only_inside_its_module(tiny_bundle):
    """Every weight is empty except while the stream has placed it for its own module's forward (a hook after the
    stream's empties it again): a weight used anywhere else would fail, and the encodings are unchanged."""
    stream, encode = _streamed_text_path(tiny_bundle)
    expected = encode(PROMPTS)
    with stream.on():
        hooks = [unit.register_forward_hook(_empty) for unit in stream.units]  # they run after the stream's own
        _set(stream, lambda t: t.new_empty(0))
        streamed = encode(PROMPTS)
        for hook in hooks:
            hook.remove()
    _assert_same(streamed, expected)


def test_streaming_leaves_the_weights_at_their_host_masters(tiny_bundle):
    """After the stream, every weight is its host master again and the stream is gone: a weight the test sets
    stays as set through a forward, where a hook left behind would point it at its master again."""
    stream, encode = _streamed_text_path(tiny_bundle)
    masters = _pointers(stream)
    with stream.on():
        encode(PROMPTS[:1])
    assert _pointers(stream) == masters and len(masters) > 10
    _set(stream, torch.Tensor.clone)
    copies = _pointers(stream)
    encode(PROMPTS[:1])
    assert _pointers(stream) == copies


def test_resident_places_every_weight_at_once_and_restores_them(tiny_bundle):
    """Generation runs Gemma once per token: inside ``resident`` every weight is present before any forward, and
    no forward moves one (copies the test puts in place stay); afterwards every weight is its host master."""
    stream, encode = _streamed_text_path(tiny_bundle)
    expected = encode(PROMPTS[:1])
    masters = _pointers(stream)
    _set(stream, lambda t: t.new_empty(0))
    with stream.resident():
        assert all(t.numel() for unit in stream.units for t in _weights(unit))
        _set(stream, torch.Tensor.clone)
        copies = _pointers(stream)
        resident = encode(PROMPTS[:1])
        assert _pointers(stream) == copies
    assert _pointers(stream) == masters
    _assert_same(resident, expected)
