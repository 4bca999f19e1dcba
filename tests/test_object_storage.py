"""A whole run against a real S3-compatible server (moto, on loopback): s3:// manifest, media, model
bundle, run folder, videos and results; weights fetched once per node; resume behaves as on a local disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import ray
import yaml
from conftest import LESSON, start_local_ray
from conftest import QUICK_1S_FLAGS as FAST

from ltxcore.mp4 import probe_mp4
from ray_jobs.cli import main as cli_main
from ray_jobs.render import main
from storage.fs import download

pytestmark = pytest.mark.own_ray


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port, the AWS variables pointing at it, and a local Ray of its own
    that inherits them (a running shared one is stopped, and started again afterwards without them)."""
    shared_ray = ray.is_initialized()
    ray.shutdown()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "LTX_BATCH_CACHE",
        )
    }
    cache = tmp_path_factory.mktemp("node-cache")
    os.environ.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        LTX_BATCH_CACHE=str(cache),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="test",
            secret_key="test",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        fs.create_dir("studio")
        start_local_ray()
        yield fs, cache
    finally:
        ray.shutdown()
        server.terminate()
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if shared_ray:
            start_local_ray()


def _put(fs: pafs.S3FileSystem, local: Path, key: str) -> None:
    with fs.open_output_stream(key) as out:
        out.write(local.read_bytes())


def test_run_entirely_on_s3_then_resume(s3, tiny_bundle, capsys):
    fs, cache = s3
    bundle_dir = Path(tiny_bundle.checkpoint_path).parent
    for path in bundle_dir.rglob("*"):
        if path.is_file():
            _put(fs, path, f"studio/models/tiny/{path.relative_to(bundle_dir)}")
    for name in ("en.ogg", "de.mp3", "presenter.png"):
        _put(fs, LESSON / name, f"studio/lessons/media/{name}")
    manifest = {
        "defaults": {"prompt": "A presenter", "image": "media/presenter.png"},
        "items": [{"id": f"clip-{i}", "audio": f"media/{('en.ogg', 'de.mp3')[i % 2]}"} for i in range(4)],
    }
    with fs.open_output_stream("studio/lessons/lesson.yaml") as out:
        out.write(yaml.safe_dump(manifest).encode())

    run = "s3://studio/runs/r1"
    args = ["s3://studio/lessons/lesson.yaml", "--out", run, "--bundle", "s3://studio/models/tiny", *FAST]
    assert main(args) == 0
    results = ds.dataset("studio/runs/r1/results", filesystem=fs, format="parquet").to_table().to_pylist()
    assert sorted(r["item_id"] for r in results if r["status"] == "ok") == [f"clip-{i}" for i in range(4)]
    assert all(r["output_uri"] == f"{run}/videos/{r['item_id']}.mp4" for r in results)
    keys = [i.path for i in fs.get_file_info(pafs.FileSelector("studio/runs/r1", recursive=True))]
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".")], "temporary keys were left behind"
    recorded = {f"studio/runs/r1/{name}" for name in ("plan.parquet", "run.json", "submitted/lesson.yaml")}
    assert recorded <= set(keys)
    local = download(f"{run}/videos/clip-0.mp4", Path(cache) / "check" / "clip-0.mp4")
    assert probe_mp4(local).frames == 24  # 1 s of audio at 24 fps: 24 frames cover it

    copies = [p for p in (Path(cache) / "weights").iterdir() if p.is_dir()]
    assert len(copies) == 1 and (copies[0] / "complete").is_file()  # two workers, one download per node

    capsys.readouterr()
    assert main(["--resume", run]) == 0
    assert "nothing to render" in capsys.readouterr().out
    again = ds.dataset("studio/runs/r1/results", filesystem=fs, format="parquet").to_table()
    assert again.num_rows == len(results)
    assert cli_main(["report", run]) == 0  # where the page is, as the user opens it: with its scheme
    assert capsys.readouterr().out.strip() == f"{run}/report/index.html"
    assert fs.get_file_info("studio/runs/r1/report/index.html").size > 0


def test_other_uri_schemes_are_refused(s3, tmp_path, capsys):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        yaml.safe_dump({"defaults": {"prompt": "p"}, "items": [{"id": "a", "audio": "http://example.invalid/a.mp3"}]})
    )
    assert main([str(manifest), "--out", str(tmp_path / "run"), "--bundle", str(tmp_path)]) == 2
    assert "only s3://, gs://, file:// URIs or local paths are allowed" in capsys.readouterr().err
