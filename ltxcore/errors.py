"""Errors written for the person running the batch: what is wrong, where, and what to do."""


class BundleError(RuntimeError):
    """A model bundle that cannot be used: a missing file, a non-safetensors file, keys that don't fit."""


class RenderInputError(ValueError):
    """A bad render input. ``field`` names the request field; the message is a human sentence."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
