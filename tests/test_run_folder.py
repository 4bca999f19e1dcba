"""The run folder's layout, named in one place (``RunFolder``), is the one old runs were written in; and run.json,
a round trip on object storage, is read at most once by each command."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import yaml
from conftest import LESSON, SHORT_RENDER

from ray_jobs.cli import status_lines
from ray_jobs.render import main
from ray_jobs.report import build_report
from runstore.run_folder import RunFolder

IN_OPEN, IN_CLOSE_NOWRITE = 0x20, 0x10  # inotify: a file of the watched folder was opened; closed after reading


class Opens:
    """Counts the opens of ``folder/name`` while in the ``with`` block, by any process and library (pyarrow's
    C++ included), as the kernel reports them (inotify): the file's real reads, however the code reaches it."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name, self.count = folder, name.encode(), 0

    def __enter__(self) -> Opens:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        # closes watched too: the kernel merges an event into an identical one just before it, unread
        if self.fd < 0 or libc.inotify_add_watch(self.fd, bytes(self.folder), IN_OPEN | IN_CLOSE_NOWRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        return self

    def __exit__(self, *exc) -> None:
        try:
            while True:
                try:
                    events = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    return
                offset = 0
                while offset < len(events):  # struct inotify_event: wd, mask, cookie, len, then the name
                    _, mask, _, length = struct.unpack_from("iIII", events, offset)
                    name = events[offset + 16 : offset + 16 + length].rstrip(b"\0")
                    self.count += bool(mask & IN_OPEN) and name == self.name
                    offset += 16 + length
        finally:
            os.close(self.fd)


def test_the_layout_is_the_one_runs_were_written_in():
    run = RunFolder("file:///runs/r1/")
    names = {
        run.marker_uri: "ltx-batch-run",
        run.submitted_uri("lesson.yaml"): "submitted/lesson.yaml",
        run.plan_uri: "plan.parquet",
        run.run_json_uri: "run.json",
        run.session_uri: "session",
        run.claim_uri: "lease.json",
        run.beats_uri: "lease-beats",
        run.beat_uri("abc"): "lease-beats/abc",
        run.fenced_uri: "fenced",
        run.fence_uri("abc"): "fenced/abc",
        run.videos_uri: "videos",
        run.video_uri("clip-1"): "videos/clip-1.mp4",
        run.results_uri: "results",
        run.revisions_uri: "results/_revisions",
        run.results_cache_uri: "results/_cache/rows.parquet",
        run.invalid_uri: "invalid.json",
        run.retry_uri: "retry.json",
        run.windows_uri: "windows",
        run.item_windows_uri("clip-1", "0123456789abcdef0123"): "windows/clip-1-0123456789abcdef",
        run.report_uri: "report",
        run.report_page_uri: "report/index.html",
        run.posters_uri: "report/posters",
        run.poster_uri("clip-1"): "report/posters/clip-1.jpg",
    }
    assert {uri: uri.removeprefix("file:///runs/r1/") for uri in names} == names
    assert run.fs_path(run.plan_uri) == "/runs/r1/plan.parquet"
    assert RunFolder.of_results(run.results_uri).uri == "file:///runs/r1"


def test_run_json_is_read_at_most_once_by_each_command(local_ray, tiny_bundle, tmp_path, capsys):
    """A new run writes run.json and never reads it back; one resume, one status and one report each open it
    once, however many of their steps need it."""
    manifest, run = tmp_path / "m.yaml", tmp_path / "run"
    items = [{"id": "a", "audio": str(LESSON / "en.ogg"), "image": str(LESSON / "presenter.png")}]
    manifest.write_text(yaml.safe_dump({"defaults": {"prompt": "A presenter"}, "items": items}))
    run.mkdir()  # an empty folder may become a run; the watch needs it there
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    with Opens(run, "run.json") as render:
        assert main([str(manifest), "--out", str(run), "--bundle", bundle, *SHORT_RENDER]) == 0
    with Opens(run, "run.json") as resume:
        assert main(["--resume", str(run)]) == 0
    assert "nothing to render" in capsys.readouterr().out
    with Opens(run, "run.json") as status:
        assert status_lines(str(run))[0].endswith(": 1 items, 1 ok, 0 failed, 0 not rendered yet")
    with Opens(run, "run.json") as report:
        build_report(str(run))
    assert (render.count, resume.count, status.count, report.count) == (0, 1, 1, 1)
