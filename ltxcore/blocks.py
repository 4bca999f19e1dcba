"""Our run of the transformer's block loop: the same upstream blocks, called so that they compile well.

Upstream 1.0.0's ``LTXModel`` walks its 48 blocks and hands each the batch's ``BatchedPerturbationConfig``;
every block then asks it, in Python and by block index, which perturbations apply, and builds its masks on
the host on every call. That index makes a compiled block recompile for each of the 48 blocks, and the
host-built masks forbid CUDA graph capture. :class:`BlockLoop` replaces the loop on one model instance:

- each block gets a :class:`BlockPerturbations`, its answers precomputed once per batch layout, masks
  already on the device, so blocks with the same answers share one compiled graph;
- a batch may declare rows that repeat another row's inputs up to some block (:class:`SharedPrefix`: the
  STG pass equals the conditional pass before the first STG block); those rows are left out of the blocks
  before it and copied from their source at it, which gives the same numbers for less work;
- with ``compile``, every block is compiled whole (norms, AdaLN, gates, RoPE, residuals and the FP8
  activation quantization fuse with their neighbours), one graph per block kind and shape; with
  ``dynamic_tokens`` the token axes are symbolic, so one graph per block kind serves every clip length;
- with ``cuda_graphs``, the whole loop is captured once per input layout and replayed; ``state_key`` names
  what else a captured loop depends on (the LoRA branches' buffers and rank ranges, ``Adapters.key``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields, replace

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationType
from ltx_core.model.transformer import LTXModel, attention
from ltx_core.model.transformer.transformer_args import TransformerArgs

from ltxcore.compile import CompiledWithFallback


@dataclass(frozen=True)
class SharedPrefix:
    """Row ``copy`` of the batch has the same inputs as row ``source`` and the same perturbations before
    block ``until``: it is computed from ``until`` on only, starting from ``source``'s hidden states."""

    source: int
    copy: int
    until: int


@dataclass(frozen=True)
class SharingPerturbations(BatchedPerturbationConfig):
    """Upstream's per-row perturbation config plus the rows whose prefix is shared (upstream ignores it)."""

    shared: tuple[SharedPrefix, ...] = ()


@dataclass(frozen=True, eq=False)
class BlockPerturbations:
    """What an upstream block asks of its ``BatchedPerturbationConfig``, answered in advance for one block.

    The block index the block passes is ignored: it is this object's own block. Masks live on the device.
    """

    all_rows: frozenset[PerturbationType]
    any_row: frozenset[PerturbationType]
    masks: dict[PerturbationType, torch.Tensor]  # (batch,) per kind: 0 where the row is perturbed

    @classmethod
    def of(cls, config: BatchedPerturbationConfig, block: int, device: torch.device, dtype: torch.dtype):
        kinds = list(PerturbationType)
        return cls(
            all_rows=frozenset(k for k in kinds if config.all_in_batch(k, block)),
            any_row=frozenset(k for k in kinds if config.any_in_batch(k, block)),
            masks={k: config.mask(k, block, device, dtype) for k in kinds},
        )

    def all_in_batch(self, kind: PerturbationType, block: int) -> bool:  # noqa: ARG002
        return kind in self.all_rows

    def any_in_batch(self, kind: PerturbationType, block: int) -> bool:  # noqa: ARG002
        return kind in self.any_row

    def mask_like(self, kind: PerturbationType, block: int, values: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        mask = self.masks[kind]
        return mask.view(mask.numel(), *([1] * (values.ndim - 1)))

    def signature(self) -> Hashable:
        return self.all_rows, self.any_row


@dataclass(frozen=True)
class _Join:
    """At ``block``, the batch becomes ``rows`` (``None``: all rows), each row's hidden states taken from
    row ``sources[i]`` of the batch before it. Index tensors live on the device (no copies while captured)."""

    block: int
    rows: torch.Tensor | None
    sources: torch.Tensor


@dataclass(frozen=True)
class _Plan:
    """Per block, the perturbation answers for the rows it runs; the rows run first; where rows join."""

    views: tuple[BlockPerturbations, ...]
    prefix_rows: torch.Tensor | None  # rows run before the first join; None: all rows throughout
    joins: dict[int, _Join]


def _plan(config: BatchedPerturbationConfig, num_blocks: int, device: torch.device, dtype: torch.dtype) -> _Plan:
    batch = len(config.perturbations)
    copied = {s.copy: s for s in getattr(config, "shared", ()) if 0 < s.until < num_blocks}
    rows_at = [tuple(r for r in range(batch) if r not in copied or b >= copied[r].until) for b in range(num_blocks)]

    def index(rows: tuple[int, ...]) -> torch.Tensor | None:
        return None if rows == tuple(range(batch)) else torch.tensor(rows, device=device)

    views, joins = [], {}
    for block, rows in enumerate(rows_at):
        sub = BatchedPerturbationConfig([config.perturbations[r] for r in rows])
        views.append(BlockPerturbations.of(sub, block, device, dtype))
        if block > 0 and rows != rows_at[block - 1]:
            before = rows_at[block - 1]
            sources = tuple(before.index(r if r in before else copied[r].source) for r in rows)
            joins[block] = _Join(block, index(rows), torch.tensor(sources, device=device))
    return _Plan(tuple(views), index(rows_at[0]) if joins else None, joins)


def _map_tensors(args: TransformerArgs, fn: Callable[[torch.Tensor], torch.Tensor]) -> TransformerArgs:
    """``args`` with ``fn`` applied to every tensor, also inside tuples (split RoPE's cos/sin)."""
    changes = {}
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, torch.Tensor):
            changes[f.name] = fn(value)
        elif isinstance(value, tuple) and value and all(isinstance(t, torch.Tensor) for t in value):
            changes[f.name] = tuple(fn(t) for t in value)
    return replace(args, **changes)


def _rows(args: TransformerArgs, rows: torch.Tensor, batch: int) -> TransformerArgs:
    """``args`` restricted to ``rows`` of the batch (every tensor whose first axis is the batch)."""
    return _map_tensors(args, lambda t: t.index_select(0, rows) if t.ndim > 0 and t.shape[0] == batch else t)


class BlockLoop:
    """Replaces ``LTXModel._process_transformer_blocks`` on one model: same blocks, same numbers."""

    def __init__(
        self,
        model: LTXModel,
        compile: bool = False,
        cuda_graphs: bool = False,
        backend: str | Callable = "inductor",
        state_key: Callable[[], Hashable] = lambda: None,
        dynamic_tokens: bool = False,
    ):
        self.blocks = list(model.transformer_blocks)
        self.state_key = state_key
        self.plans: dict[Hashable, _Plan] = {}
        self.graphs: dict[Hashable, _CapturedLoop] = {}
        self.pool: torch.cuda._POOL_HANDLE | None = None  # its captured loops' memory pool, made at capture
        self.cuda_graphs = cuda_graphs
        self.run_block: Callable = _call_block
        if compile:
            _resolve_attention_functions(model)
            marks, key = (_mark_token_axes, _block_graph_key) if dynamic_tokens else (None, _block_call_key)
            self.run_block = CompiledWithFallback(_call_block, key, backend, mark_dynamic=marks)
        model._process_transformer_blocks = self  # pyright: ignore[reportAttributeAccessIssue]  # our loop, upstream's blocks

    def __call__(
        self,
        video: TransformerArgs | None,
        audio: TransformerArgs | None,
        perturbations: BatchedPerturbationConfig | None,
    ):
        first = video if video is not None else audio
        assert first is not None, "the transformer is called with video, audio or both"
        batch = first.x.shape[0]
        config = perturbations if perturbations is not None else BatchedPerturbationConfig.empty(batch)
        plan_key = (_config_key(config), first.x.device, first.x.dtype)
        plan = self.plans.get(plan_key)
        if plan is None:
            plan = self.plans[plan_key] = _plan(config, len(self.blocks), first.x.device, first.x.dtype)
        if self.cuda_graphs and first.x.is_cuda:
            key = (plan_key, _layout(video), _layout(audio), self.state_key())
            graph = self.graphs.get(key)
            if graph is None and len(self.graphs) >= MAX_CAPTURED_LOOPS:
                return self._run(video, audio, plan, batch)  # compiled, not captured: memory stays bounded
            if graph is None:
                if self.pool is None:
                    self.pool = torch.cuda.graph_pool_handle()
                run = lambda v, a: self._run(v, a, plan, batch)  # noqa: E731
                graph = self.graphs[key] = _CapturedLoop(run, video, audio, self.pool)
            return graph(video, audio)
        return self._run(video, audio, plan, batch)

    def _run(self, video, audio, plan: _Plan, batch: int):
        full = (video, audio)
        if plan.prefix_rows is not None:
            video, audio = (None if a is None else _rows(a, plan.prefix_rows, batch) for a in full)
        for index, block in enumerate(self.blocks):
            join = plan.joins.get(index)
            if join is not None:
                video, audio = (_rejoin(a, state, join, batch) for a, state in zip(full, (video, audio), strict=True))
            video, audio = self.run_block(block, video, audio, plan.views[index])
        return video, audio


def _rejoin(args: TransformerArgs | None, state: TransformerArgs | None, join: _Join, batch: int):
    """The stream's args for the rows from ``join`` on: hidden states from each row's source row."""
    if args is None:
        return None
    args = args if join.rows is None else _rows(args, join.rows, batch)
    assert state is not None
    return replace(args, x=state.x.index_select(0, join.sources))


def _call_block(block: torch.nn.Module, video, audio, perturbations: BlockPerturbations):
    return block(video=video, audio=audio, perturbations=perturbations)


# Captured loops a BlockLoop keeps: each holds static copies of its inputs (at a 10 s window's stage 2, the
# per-token timesteps alone are ~1 GB), and every clip length and stage is a layout of its own; past this many,
# a new layout runs its compiled blocks uncaptured (their launches not saved) rather than hold more memory.
MAX_CAPTURED_LOOPS = 24
TOKEN_AXES = {"x": 1, "timesteps": 1, "embedded_timestep": 1, "positional_embeddings": 2}
TOKEN_AXES["cross_positional_embeddings"] = 2  # the axis of a stream's tokens in each per-token field


def _mark_token_axes(block: torch.nn.Module, video, audio, perturbations: BlockPerturbations) -> None:  # noqa: ARG001
    """Mark each stream's token axis symbolic for the compiled block (see ``ltxcore.compile``)."""
    for args in (video, audio):
        if args is None:
            continue
        for name, axis in TOKEN_AXES.items():
            value = getattr(args, name)
            for tensor in value if isinstance(value, tuple) else (value,):
                if isinstance(tensor, torch.Tensor) and tensor.ndim > axis:
                    torch._dynamo.maybe_mark_dynamic(tensor, axis)


def _block_call_key(block: torch.nn.Module, video, audio, perturbations: BlockPerturbations) -> Hashable:
    return type(block).__name__, _layout(video), _layout(audio), perturbations.signature()


def _block_graph_key(block: torch.nn.Module, video, audio, perturbations: BlockPerturbations) -> Hashable:
    """A token-generic block's graph: its layout but for the token axes (a failed compile is not tried again
    at every length)."""
    return type(block).__name__, _layout(video, True), _layout(audio, True), perturbations.signature()


def _resolve_attention_functions(model: torch.nn.Module) -> None:
    """Swap upstream's ``AttentionFunction`` enum (which dynamo cannot call) for the callable it picks."""
    default = attention.XFormersAttention if attention.memory_efficient_attention is not None else None
    chosen = {
        attention.AttentionFunction.PYTORCH: attention.PytorchAttention,
        attention.AttentionFunction.XFORMERS: attention.XFormersAttention,
        attention.AttentionFunction.FLASH_ATTENTION_3: attention.FlashAttention3,
        attention.AttentionFunction.DEFAULT: default or attention.PytorchAttention,
    }
    for module in model.modules():
        function = getattr(module, "attention_function", None)
        if isinstance(module, attention.Attention) and isinstance(function, attention.AttentionFunction):
            module.attention_function = chosen[function]()


def _config_key(config: BatchedPerturbationConfig) -> Hashable:
    rows = tuple(
        tuple((p.type, None if p.blocks is None else tuple(p.blocks)) for p in (row.perturbations or ()))
        for row in config.perturbations
    )
    return rows, tuple(getattr(config, "shared", ()))


def _layout(args: TransformerArgs | None, any_tokens: bool = False) -> Hashable:
    """The shapes and dtypes of ``args``; with ``any_tokens``, the token axes (``TOKEN_AXES``) left out."""
    if args is None:
        return None

    def shape(name: str, tensor: torch.Tensor) -> tuple:
        axis = TOKEN_AXES.get(name.split(".")[0]) if any_tokens else None
        return tuple(None if i == axis else size for i, size in enumerate(tensor.shape))

    return args.enabled, tuple((name, shape(name, t), t.dtype) for name, t in _tensors(args))


class _CapturedLoop:
    """One CUDA graph of the block loop for one input layout: inputs are copied into static buffers. The graphs
    of one ``BlockLoop`` share its memory pool (``pool``: one of its graphs replays at a time), and a loop's pool
    goes with its graphs: a pool whose graphs were all freed is never captured into again (torch asserts)."""

    def __init__(
        self, run: Callable, video: TransformerArgs | None, audio: TransformerArgs | None, pool: torch.cuda._POOL_HANDLE
    ):
        self.inputs = (_static(video), _static(audio))
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # compiles and selects kernels outside the capture
                run(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.outputs = run(*self.inputs)

    def __call__(self, video, audio):
        for static, args in zip(self.inputs, (video, audio), strict=True):
            if static is not None:
                _copy_into(static, args)
        self.graph.replay()
        return tuple(None if o is None else replace(o, x=o.x.clone()) for o in self.outputs)


def _tensors(args: TransformerArgs):
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, torch.Tensor):
            yield f.name, value
        elif isinstance(value, tuple):
            for i, t in enumerate(value):
                yield f"{f.name}.{i}", t


def _static(args: TransformerArgs | None) -> TransformerArgs | None:
    return None if args is None else _map_tensors(args, torch.clone)


def _copy_into(static: TransformerArgs, args: TransformerArgs) -> None:
    for (_, dst), (_, src) in zip(_tensors(static), _tensors(args), strict=True):
        dst.copy_(src)
