"""The streamed text path: every weight is used only inside its own module's forward, so streaming
module by module is complete, and results are unchanged."""

from __future__ import annotations

import torch

from ltxcore.loading import build_embeddings_processor, build_text_encoder
from ltxcore.offload import StreamedModule, _own_tensors
from ltxcore.text import encode_prompts

PROMPTS = ["A presenter speaks to the camera", "blurry, low quality", "Hola a todos"]


class _AbsentOutsideForward(StreamedModule):
    """Outside its forward a module's weights are empty tensors: any use from elsewhere fails loudly."""

    def _place(self, unit, device):
        for t in _own_tensors(unit):
            master = self.host[id(t)]
            t.data = master if device is not None else master.new_empty(0)


def _text_path(bundle):
    cpu = torch.device("cpu")
    return build_text_encoder(bundle, cpu), build_embeddings_processor(bundle, cpu)


def test_streamed_text_path_uses_each_weight_only_inside_its_module(tiny_bundle):
    encoder, embeddings = _text_path(tiny_bundle)
    expected = encode_prompts(PROMPTS, encoder, embeddings, torch.device("cpu"))
    stream = _AbsentOutsideForward(torch.nn.ModuleList([encoder, embeddings]), torch.device("cpu"))
    with stream.on():
        for unit in stream.units:
            stream._place(unit, None)  # nothing is present until its module runs
        streamed = encode_prompts(PROMPTS, encoder, embeddings, torch.device("cpu"))
    for a, b in zip(streamed, expected, strict=True):
        assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)


def test_streaming_leaves_the_weights_at_their_host_masters(tiny_bundle):
    encoder, embeddings = _text_path(tiny_bundle)
    stream = StreamedModule(torch.nn.ModuleList([encoder, embeddings]), torch.device("cpu"))
    before = {id(t): t.data_ptr() for unit in stream.units for t in _own_tensors(unit)}
    with stream.on():
        encode_prompts(PROMPTS[:1], encoder, embeddings, torch.device("cpu"))
    after = {id(t): t.data_ptr() for unit in stream.units for t in _own_tensors(unit)}
    assert before == after and len(before) > 10
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in stream.units)


def test_resident_places_every_weight_at_once_and_restores_them(tiny_bundle):
    """Generation runs Gemma once per token: inside ``resident`` every weight is present without hooks."""
    encoder, embeddings = _text_path(tiny_bundle)
    expected = encode_prompts(PROMPTS[:1], encoder, embeddings, torch.device("cpu"))
    stream = _AbsentOutsideForward(torch.nn.ModuleList([encoder, embeddings]), torch.device("cpu"))
    for unit in stream.units:
        stream._place(unit, None)
    with stream.resident():
        assert all(not m._forward_pre_hooks for m in stream.units)
        assert all(t.numel() for unit in stream.units for t in _own_tensors(unit))
        resident = encode_prompts(PROMPTS[:1], encoder, embeddings, torch.device("cpu"))
    assert not any(t.numel() for unit in stream.units for t in _own_tensors(unit))
    assert torch.equal(resident[0].video, expected[0].video) and torch.equal(resident[0].audio, expected[0].audio)
