"""A long item's finished windows in the run folder (``RunFolder.item_windows_uri``).

The run folder holds them, not the worker, so a chain whose worker is lost resumes from its last finished window
on any other worker, and ``cuts`` windows rendered on several workers meet in one place to be joined. The
fingerprint is in the name: an item edited under the same id starts its windows afresh. On object storage a
worker renders into a local copy, fetched first and copied back file by file as each is whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow.fs as pafs

from ltxcore.windows import window_index
from runstore.plan import JoinWindows, PlannedItem, RenderWindow
from runstore.run_folder import RunFolder
from storage.fs import download, write_atomically


def _names(run: RunFolder, uri: str) -> list[str]:
    infos = run.fs.get_file_info(pafs.FileSelector(run.fs_path(uri), allow_not_found=True))
    return [info.base_name for info in infos if info.type == pafs.FileType.File]


def finished_windows(run: RunFolder, planned: PlannedItem) -> set[int]:
    """The windows of ``planned`` with a record (and so whole) in the run folder."""
    uri = run.item_windows_uri(planned.id, planned.fingerprint)
    return {i for name in _names(run, uri) if (i := window_index(name)) is not None}


def finished_counts(run: RunFolder, items: list[tuple[str, str]]) -> dict[str, int]:
    """Item id -> how many of its windows are finished in the run folder, for (id, fingerprint) ``items``, from one
    listing of ``windows/`` (``status`` of a big run lists once, not once per item)."""
    selector = pafs.FileSelector(run.fs_path(run.windows_uri), recursive=True, allow_not_found=True)
    infos = run.fs.get_file_info(selector)
    per_folder: dict[str, int] = {}
    for info in infos:
        if info.type == pafs.FileType.File and window_index(info.base_name) is not None:
            folder = info.path.rsplit("/", 2)[-2]
            per_folder[folder] = per_folder.get(folder, 0) + 1
    counts = {item_id: per_folder.get(_base(run.item_windows_uri(item_id, fp)), 0) for item_id, fp in items}
    return {item_id: n for item_id, n in counts.items() if n}


def _base(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def units_of_work(planned: list[PlannedItem], run: RunFolder) -> list[PlannedItem]:
    """What workers are handed: each item whole, but a ``cuts`` item of several windows as one part per window
    not yet in the run folder (the scheduler queues its join once they all are), or its join alone."""
    out = []
    for p in planned:
        windows = p.window_plan
        if len(windows) < 2 or p.item.long_form != "cuts":
            out.append(p)
            continue
        done = finished_windows(run, p)
        missing = [replace(p, part=RenderWindow(w.index)) for w in windows if w.index not in done]
        out += missing or [replace(p, part=JoinWindows())]
    return out


def local_windows(run: RunFolder, planned: PlannedItem, scratch: Path) -> tuple[Path, Callable[[Path], None] | None]:
    """A local folder holding the item's finished windows, and the callback that keeps the run folder up to
    date as each new file is whole (``ltxcore.long_form.WindowFolder``'s ``saved``)."""
    uri = run.item_windows_uri(planned.id, planned.fingerprint)
    fs, path = run.fs, run.fs_path(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(path), None
    local = scratch / "windows" / _base(uri)
    shutil.rmtree(local, ignore_errors=True)
    for name in sorted(_names(run, uri), key=lambda n: n.endswith(".json")):  # records last: a record means whole
        if not name.startswith("."):
            download(f"{uri}/{name}", local / name)

    def saved(file: Path) -> None:
        with open(file, "rb") as f:
            write_atomically(fs, f"{path}/{file.name}", lambda stream: shutil.copyfileobj(f, stream, 1 << 22))

    return local, saved
