"""The report's poster frames: a small JPEG of each ok clip's middle frame, beside the page in ``report/posters/``,
made once and reused while it is newer than its video.

The videos and posters folders are listed once each rather than asked about file by file: a run of 100,000
items (on a bucket, too) lists in seconds."""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import av
import av.error
import pyarrow.fs as pafs
from av.container import InputContainer
from PIL import Image, UnidentifiedImageError

from runstore.run_folder import RunFolder
from storage.fs import write_atomically

POSTER_WIDTH = 256


def extract_poster(fs: pafs.FileSystem, video_path: str) -> tuple[bytes, tuple[int, int]]:
    """The middle frame as a small JPEG: seek to the nearest keyframe before it, decode up to it."""
    with fs.open_input_file(video_path) as f, cast(InputContainer, av.open(f, mode="r")) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        middle = (stream.duration or 0) // 2
        if stream.frames and stream.average_rate and stream.time_base:  # exact: the frame at index frames // 2
            middle = int((stream.frames // 2) / stream.average_rate / stream.time_base)
        target = start + middle
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frame = None
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts >= target:
                break
        if frame is None:
            raise ValueError(f"{video_path}: no video frame")
        image = frame.to_image()
    if image.width > POSTER_WIDTH:
        image = image.resize((POSTER_WIDTH, max(1, round(image.height * POSTER_WIDTH / image.width))))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue(), image.size


def _poster(
    fs: pafs.FileSystem, video: pafs.FileInfo, poster: pafs.FileInfo | None, path: str
) -> tuple[int, int] | None:
    """Write (or reuse, if newer than the video) one poster at ``path``; None when the video cannot be read."""
    try:
        if poster is not None and poster.mtime_ns and poster.mtime_ns >= (video.mtime_ns or 0):
            with fs.open_input_file(poster.path) as f, Image.open(f) as image:  # reads only the JPEG header
                return image.size
        data, size = extract_poster(fs, video.path)
        write_atomically(fs, path, lambda stream: stream.write(data))
        return size
    except (av.error.FFmpegError, UnidentifiedImageError, OSError, ValueError, IndexError):
        return None


def _files(run: RunFolder, uri: str) -> dict[str, pafs.FileInfo]:
    """The files of the run's folder ``uri`` by name; none when it does not exist."""
    folder = run.fs_path(uri)
    if run.fs.get_file_info(folder).type != pafs.FileType.Directory:
        return {}
    return {i.base_name: i for i in run.fs.get_file_info(pafs.FileSelector(folder)) if i.type == pafs.FileType.File}


def _name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def posters(run: RunFolder, ok_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Item id -> (width, height) of its poster, for the items of ``ok_ids`` whose video can be read; posters
    made on the way. Only ids whose video is found in the listing are read, so none leaves the folder."""
    run.fs.create_dir(run.fs_path(run.posters_uri), recursive=True)
    videos, made = _files(run, run.videos_uri), _files(run, run.posters_uri)
    todo = [i for i in ok_ids if _name(run.video_uri(i)) in videos]

    def size(item_id: str) -> tuple[int, int] | None:
        poster = run.poster_uri(item_id)
        return _poster(run.fs, videos[_name(run.video_uri(item_id))], made.get(_name(poster)), run.fs_path(poster))

    with ThreadPoolExecutor(max_workers=8) as pool:  # decoding releases the GIL; thousands of posters add up
        sizes = dict(zip(todo, pool.map(size, todo), strict=True))
    return {i: s for i, s in sizes.items() if s is not None}
