"""User LoRA files checked before a run: each read once (its header only, local or remote), in the released
(ComfyUI) naming, and fitting the transformer when the bundle is local (its layers read from the
checkpoint's header). The worker runs the same checks on the loaded tensors (``ltxcore.lora``)."""

from __future__ import annotations

from ltxcore.checkpoint_header import linear_shapes, read_header, tensor_shapes, transformer_shapes
from ltxcore.errors import BundleError
from storage.fs import StorageError, filesystem, is_uri


class LoraFiles:
    """Problems of each LoRA file, found once per file however many items use it."""

    def __init__(self, checkpoint_path: str | None):
        self.checkpoint_path = checkpoint_path  # None: the model is remote or unknown, shapes are not checked
        self._linears: dict[str, tuple[int, int]] | None = None
        self.found: dict[str, list[str]] = {}

    def problems(self, path: str) -> list[str]:
        if path not in self.found:
            self.found[path] = self._check(path)
        return self.found[path]

    @property
    def linears(self) -> dict[str, tuple[int, int]] | None:
        if self._linears is None and self.checkpoint_path is not None:
            self._linears = linear_shapes(transformer_shapes(self.checkpoint_path))
        return self._linears

    def _check(self, path: str) -> list[str]:
        from ltxcore.lora import FLOAT_DTYPES, fit_problems, lora_layers, lora_name  # torch: only with LoRAs

        if not path.endswith(".safetensors"):
            return []  # the request's own checks say so
        try:
            fs, local = filesystem(path)
            with fs.open_input_file(local) as f:
                header = read_header(f, path)
        except FileNotFoundError:
            return [f"{path} does not exist."] if is_uri(path) else []  # a local one: the request's checks
        except (BundleError, StorageError, OSError) as e:
            return [str(e)]
        entries = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
        not_float = [k for k, v in entries.items() if v.get("dtype") not in FLOAT_DTYPES]
        if not_float:
            dtype = entries[not_float[0]].get("dtype")
            return [f"{path}: holds {not_float[0]} as {dtype}; LoRA weights are F32, F16 or BF16."]
        named = {lora_name(k): shape for k, shape in tensor_shapes(header).items()}
        layers, problems = lora_layers({k: shape for k, shape in named.items() if k is not None})
        if not problems and self.linears is not None:
            problems = fit_problems(layers, self.linears)
        return [f"{path}: {problem}" for problem in problems]
