"""The model given on the command line (``--bundle``, one flag per bundle file, ``--quantization``,
``--transformer``): laid over a manifest's model section, or over a run's on resume.

Kept free of pyarrow and pydantic: the command line builds it before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelOptions:
    """What is not given here comes from the manifest (or the run). Paths are as the command line made them
    (absolute, or URIs), so a run records paths valid from any working directory."""

    bundle: str | None = None
    files: tuple[tuple[str, str], ...] = ()  # (bundle file name, path) for each file given on its own
    quantization: str | None = None
    transformer: str | None = None

    def section(self, base: dict) -> dict:
        """``base`` (a manifest's or a run's model section) with the bundle and the files given here."""
        model = {"bundle": self.bundle} if self.bundle else dict(base)
        return {**model, **dict(self.files)}
