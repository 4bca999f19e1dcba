"""Local paths and object-store URIs behind one small interface, on ``pyarrow.fs``.

Only ``s3://``, ``gs://`` and ``file://`` URIs are accepted; anything else with a scheme is refused.
Writes are atomic from a reader's point of view: a hidden temporary name (or key) first, then a move
(on object stores, a server-side copy), so nobody ever sees a partial file under its final name.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

SCHEMES = ("s3://", "gs://", "file://")


class StorageError(ValueError):
    """A URI this project will not read or write, or a remote object that is not there."""


class NotFound(StorageError):
    """The object asked for is not there."""


def is_uri(value: object) -> bool:
    return isinstance(value, str) and "://" in value


def local_or_uri(path: str) -> str:
    """A URI as given; a local path made absolute (what a run records, valid from any working directory)."""
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``pyarrow.fs`` filesystem and path for a local path or an allowed URI."""
    uri = str(uri)
    if not is_uri(uri):
        return pafs.LocalFileSystem(), str(Path(uri).expanduser())
    if not uri.startswith(SCHEMES):
        raise StorageError(f"{uri}: only {', '.join(SCHEMES)} URIs or local paths are allowed.")
    if uri.startswith("file://"):
        return pafs.LocalFileSystem(), uri.removeprefix("file://")
    return pafs.FileSystem.from_uri(uri)


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


def write_atomically(fs: pafs.FileSystem, path: str, write) -> None:
    """``write(stream)`` to a hidden temporary name beside ``path``, then move it into place."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as stream:
        write(stream)
    fs.move(tmp, path)


def write_bytes(uri: str, data: bytes) -> None:
    """``data`` to ``uri`` (its folder made first), atomically: the one writer of small files (run.json, a
    retry run's manifest) for the run store and the commands."""
    fs, path = filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    write_atomically(fs, path, lambda stream: stream.write(data))


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def file_identity(uri: str) -> dict:
    """Size and modification time of a local file or an object-store object: the one record of a file's
    identity that fingerprints (media and model bundles) and the node weight cache compare."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise StorageError(f"{uri} does not exist.")
    return {"size": info.size, "mtime_ns": info.mtime_ns}


def files_under(uri: str) -> list[tuple[str, str]]:
    """(relative name, URI) of a file, or of every file under a folder (a Gemma root)."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        return [(str(uri).rstrip("/").rsplit("/", 1)[-1], uri)]
    root = path.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    names = sorted(i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File)
    return [(name, join(uri, name)) for name in names]


def download(uri: str, local: Path) -> Path:
    """Copy a (remote) file to ``local``, atomically."""
    fs, path = filesystem(uri)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
    try:
        with fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        tmp.replace(local)
    except FileNotFoundError as e:
        raise NotFound(f"{uri} does not exist.") from e
    finally:
        tmp.unlink(missing_ok=True)
    return local


def upload(local: Path, uri: str) -> None:
    """Move a finished local file to ``uri``; readers never see it partial."""
    fs, path = filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), path)
        return
    with open(local, "rb") as f:
        write_atomically(fs, path, lambda stream: shutil.copyfileobj(f, stream, 1 << 22))
    local.unlink()


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


@contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path of ``uri``: itself, or a temporary copy of an object-store file (removed afterwards)."""
    if not is_uri(uri):
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="ltx-batch-copy-") as folder:
        yield str(download(uri, Path(folder) / uri.rsplit("/", 1)[-1]))


def write_with(uri: str, write: Callable[[Path], None]) -> None:
    """A file too large for memory, written by ``write(local_path)`` and then moved to ``uri`` atomically:
    through a hidden name beside it on a local disk, through a temporary local file to an object store."""
    fs, path = filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    with tempfile.TemporaryDirectory(prefix="ltx-batch-upload-") as folder:
        tmp = Path(folder) / path.rsplit("/", 1)[-1]
        write(tmp)
        upload(tmp, uri)
