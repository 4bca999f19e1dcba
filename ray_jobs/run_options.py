"""The options of a render as typed, frozen data: built once from the command line (``ray_jobs.options``) and
passed down; ``run.json`` records them (``record``) and a resume reads them back (``recorded_options``).

Kept free of argparse, Ray and torch: what a render is asked to do, not how it was typed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ltxcore.bundle import OPTIONAL_NAMES, RELEASED_NAMES
from manifests.model_options import ModelOptions

VERSION = 1
MODEL_FILES = tuple({**RELEASED_NAMES, **OPTIONAL_NAMES})  # the bundle's files, each overridable by its path


class RunOptionsError(ValueError):
    """A run.json whose options this version cannot read."""


@dataclass(frozen=True)
class WorkerOptions:
    """How many render workers, of what size, and how they treat their items."""

    actors: int | None = None  # None: one per GPU, else per free CPU slot
    shard_size: int = 8
    device: str = "auto"
    compile: bool = True  # GPU workers compile the transformer (``--no-compile`` turns it off)
    max_attempts: int = 3
    cpus_per_actor: int = 1
    max_loras: int = 4
    local_cpus: int | None = None  # CPUs of a local Ray started by the command
    address: str | None = None  # the Ray cluster to join (default RAY_ADDRESS; none: a local Ray)
    take_over: bool = False  # take the run from a driver that holds it (``runstore.claim``)
    cache: str | None = None  # the artifact cache (``ltxcore.artifacts``); None: each node's default


@dataclass(frozen=True)
class ItemOptions:
    """What changes the items of a new run, and how their validation goes."""

    defaults: str | None = None  # YAML with model/defaults for a Parquet manifest
    overrides: tuple[str, ...] = ()  # ``--set FIELD=VALUE`` as given (``--draft`` is one of them)
    max_tokens: int | None = None
    skip_invalid: bool = False


@dataclass(frozen=True)
class ResumeOptions:
    """What a resume does when something changed since submission (``ray_jobs.resume_check``)."""

    choice: str | None = None  # "replan" or "keep-plan"; None: refuse, listing the changes
    manifest: str | None = None  # the edited manifest to compare (None: the path it was submitted from)


@dataclass(frozen=True)
class RunOptions:
    """A render of ``manifest`` into the run folder ``out``, or (no manifest) the rest of the run at ``out``."""

    out: str
    manifest: str | None = None
    workers: WorkerOptions = field(default_factory=WorkerOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    items: ItemOptions = field(default_factory=ItemOptions)
    resume_with: ResumeOptions = field(default_factory=ResumeOptions)

    @property
    def resume(self) -> bool:
        return self.manifest is None

    def record(self) -> dict:
        """The options as ``run.json`` keeps them."""
        return {"version": VERSION, **asdict(self)}


def recorded_options(info: dict) -> RunOptions:
    """The options a run was started with, from its ``run.json``: ``options`` (this format), or ``args`` (the
    parsed command line that runs before it recorded)."""
    if "options" in info:
        data = info["options"]
        if data.get("version") != VERSION:
            raise RunOptionsError(
                f"run.json records its options in version {data.get('version')!r}; this ltx-batch reads version "
                f"{VERSION}: resume the run with the ltx-batch that started it."
            )
        model = data["model"]
        return RunOptions(
            out=data["out"],
            manifest=data["manifest"],
            workers=WorkerOptions(**data["workers"]),
            model=ModelOptions(**{**model, "files": tuple(tuple(pair) for pair in model["files"])}),
            items=ItemOptions(**{**data["items"], "overrides": tuple(data["items"]["overrides"])}),
        )
    return _from_args(info.get("args", {}))


def _from_args(parsed: dict) -> RunOptions:
    """Options from the ``args`` of an older run.json: the parsed command line, one flat dict."""

    def taken(cls) -> dict:
        return {f.name: parsed[f.name] for f in fields(cls) if f.name in parsed}

    workers = {**taken(WorkerOptions), "compile": not parsed.get("no_compile", False)}
    files = tuple((name, parsed[name]) for name in MODEL_FILES if parsed.get(name))
    return RunOptions(
        out=parsed.get("out") or parsed.get("resume") or "",
        manifest=None if parsed.get("resume") else parsed.get("manifest"),
        workers=WorkerOptions(**workers),
        model=ModelOptions(**{**taken(ModelOptions), "files": files}),
        items=ItemOptions(**{**taken(ItemOptions), "overrides": tuple(parsed.get("set") or ())}),
    )
