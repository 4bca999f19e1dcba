"""LoRA files in the released (ComfyUI) naming: read, and checked against the transformer they adapt.

A LoRA holds, per adapted Linear, ``diffusion_model.<layer>.lora_A.weight`` (rank x in) and
``...lora_B.weight`` (out x rank); upstream's ``LTXV_LORA_COMFY_RENAMING_MAP`` maps the names onto the
transformer's modules. The same checks run on a file's header (validation, before anything loads) and on
its loaded tensors (the worker), so both report the same file and layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, SafetensorsStateDictLoader
from safetensors import SafetensorError

from ltxcore.errors import RenderInputError
from ltxcore.local_files import FileIdentity, file_identity

DOWN, UP = ".lora_A.weight", ".lora_B.weight"
FLOAT_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
SHOWN = 3  # layers named in one message; the rest are counted


class LoraError(RenderInputError):
    """A LoRA file that cannot be used: its message names the file, and the layer where there is one."""

    def __init__(self, path: str, message: str):
        super().__init__("loras", f"{path}: {message}")


def lora_name(key: str) -> str | None:
    """A file's tensor name as the transformer names it (upstream's renaming map)."""
    return LTXV_LORA_COMFY_RENAMING_MAP.apply_to_key(key)


def lora_layers(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """{adapted layer: (rank, out, in)} from a LoRA's tensor shapes (named as the transformer names them),
    and every problem with them: a tensor that is not a lora_A/lora_B weight, a half pair, ranks that differ."""
    halves: dict[str, dict[str, tuple[int, ...]]] = {}
    problems = []
    for name, shape in shapes.items():
        suffix = DOWN if name.endswith(DOWN) else UP if name.endswith(UP) else None
        if suffix is None:
            problems.append(f"holds {name}, which is not a lora_A/lora_B weight of the released (ComfyUI) naming.")
            continue
        halves.setdefault(name.removesuffix(suffix), {})[suffix] = shape
    layers = {}
    for layer, pair in sorted(halves.items()):
        down, up = pair.get(DOWN), pair.get(UP)
        if down is None or up is None:
            has, lacks = ("B", "A") if down is None else ("A", "B")
            problems.append(f"layer {layer} has lora_{has} without lora_{lacks}.")
        elif len(down) != 2 or len(up) != 2 or down[0] != up[1] or down[0] == 0:
            pair_shapes = f"lora_A {list(down)} and lora_B {list(up)}"
            problems.append(f"layer {layer}: {pair_shapes} are not a (rank x in), (out x rank) pair.")
        else:
            layers[layer] = (down[0], up[0], down[1])
    if not halves and not problems:
        problems.append("holds no lora_A/lora_B weights.")
    return layers, problems


def fit_problems(layers: dict[str, tuple[int, int, int]], linears: dict[str, tuple[int, int]]) -> list[str]:
    """Why ``layers`` (from :func:`lora_layers`) do not fit a model with these Linears ({name: (out, in)})."""
    missing = [layer for layer in layers if layer not in linears]
    misfit = [layer for layer in layers if layer in linears and linears[layer] != layers[layer][1:]]
    out = []
    if missing:
        more = f" (and {len(missing) - SHOWN} more)" if len(missing) > SHOWN else ""
        shown = ", ".join(missing[:SHOWN])
        out.append(f"targets layer {shown}{more}, which the model lacks; is it a LoRA for LTX-2.3?")
    for layer in misfit[:SHOWN]:
        (_, out_f, in_f), (model_out, model_in) = layers[layer], linears[layer]
        out.append(f"layer {layer} is {out_f}x{in_f} in the LoRA but {model_out}x{model_in} in the model.")
    if len(misfit) > SHOWN:
        out.append(f"{len(misfit) - SHOWN} more layers have the wrong shape.")
    return out


def held_dtype(file_dtype: torch.dtype, compute_dtype: torch.dtype) -> torch.dtype:
    """The smallest dtype that keeps a LoRA's result: the branch computes in ``compute_dtype``, so a wider
    file (fp32 in a bf16 engine) would be rounded to it anyway, while a file as narrow (bf16, fp16) is kept
    as written."""
    return file_dtype if file_dtype.itemsize <= compute_dtype.itemsize else compute_dtype


@dataclass(frozen=True)
class LoraWeights:
    """One LoRA file's tensors: ``{layer: (down (rank x in), up (out x rank))}``, and the file's identity."""

    path: str
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]
    identity: FileIdentity  # of the file when read

    @property
    def rank(self) -> int:
        """Ranks it occupies in a branch: its largest layer rank."""
        return max(down.shape[0] for down, _ in self.layers.values())


def lora_file_identity(path: str) -> FileIdentity:
    """``ltxcore.local_files.file_identity``, or a ``LoraError`` that says why the file cannot be read."""
    try:
        return file_identity(path)
    except OSError as e:
        raise LoraError(path, f"cannot be read: {e.strerror}.") from e


def read_lora(
    path: str,
    linears: dict[str, tuple[int, int]],
    compute_dtype: torch.dtype,
    device: torch.device,
    pin: bool = False,
) -> LoraWeights:
    """Load a LoRA with upstream's safetensors loader and renaming map, check it against ``linears``, and
    hold it on ``device`` in :func:`held_dtype` (in pinned memory with ``pin``)."""
    identity = lora_file_identity(path)
    if not path.endswith(".safetensors"):
        raise LoraError(path, "is not a .safetensors file; only safetensors are ever loaded.")
    try:
        sd = SafetensorsStateDictLoader().load(path, sd_ops=LTXV_LORA_COMFY_RENAMING_MAP, device=device).sd
    except (OSError, SafetensorError) as e:
        raise LoraError(path, f"is not a readable safetensors file: {e}.") from e
    not_float = [name for name, t in sd.items() if t.dtype not in FLOAT_DTYPES.values()]
    if not_float:
        raise LoraError(path, f"holds {not_float[0]} as {sd[not_float[0]].dtype}; LoRA weights are F32, F16 or BF16.")
    layers, problems = lora_layers({name: tuple(t.shape) for name, t in sd.items()})
    problems += fit_problems(layers, linears)
    if problems:
        raise LoraError(path, " ".join(problems))
    tensors = {}
    for layer in layers:
        pair = []
        for t in (sd.pop(layer + DOWN), sd.pop(layer + UP)):
            t = t.to(held_dtype(t.dtype, compute_dtype)).contiguous()
            pair.append(t.pin_memory() if pin else t)
        tensors[layer] = tuple(pair)
    return LoraWeights(path, tensors, identity)
