"""One Ray run on the tiny bundle with upstream A2Vid's per-item options: user LoRAs on some items, two
conditioning images on some items,
the one-image shorthand on another, prompt enhancement shared across shards (generated once per run, recorded,
read back on resume), and the frozen-audio setting recorded per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from conftest import LESSON, QUICK_1S_FLAGS, report_cards
from PIL import Image

from fixtures.random_bundle import write_random_lora
from ray_jobs.render import main
from ray_jobs.report import build_report
from runstore.results import read_results


def _manifest(tmp_path: Path, lora: str) -> Path:
    pose = tmp_path / "pose.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (96, 144, 3), dtype=np.uint8)).save(pose)
    two = [{"path": str(LESSON / "presenter.png")}, {"path": str(pose), "frame": 8, "strength": 0.7}]
    items = [
        {
            "id": "two-a",
            "audio": str(LESSON / "en.ogg"),
            "images": two,
            "enhance_prompt": True,
            "seed": 5,
            "loras": [{"path": lora, "strength": 0.8}],
        },
        {"id": "two-b", "audio": str(LESSON / "de.mp3"), "images": two, "enhance_prompt": True, "seed": 5},
        {
            "id": "one",
            "audio": str(LESSON / "es.m4a"),
            "image": str(LESSON / "presenter.png"),
            "enhance_prompt": True,
            "loras": [{"path": lora}],
        },
    ]
    body = {"defaults": {"prompt": "A presenter talks", "audio_max_duration": 1.0}, "items": items}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _enhanced_count(out: str) -> int:
    """Prompts the workers enhanced, from the driver's notes (``HOST: N prompt(s) enhanced in S``)."""
    return sum(int(line.split(": ")[1].split()[0]) for line in out.splitlines() if "prompt(s) enhanced" in line)


def test_images_and_enhancement_through_ray_once_per_run_and_reused_on_resume(local_ray, tiny_bundle, tmp_path, capsys):
    run = tmp_path / "run"
    bundle = str(Path(tiny_bundle.checkpoint_path).parent)
    lora = str(write_random_lora(tiny_bundle, tmp_path / "brand.safetensors", 4, seed=1))
    args = [str(_manifest(tmp_path, lora)), "--out", str(run), "--bundle", bundle, "--shard-size", "1", "--actors", "2"]
    assert main([*args, *QUICK_1S_FLAGS]) == 0
    assert _enhanced_count(capsys.readouterr().out) == 2  # (prompt, first image, 5) and (prompt, image, its seed)
    rows = {r["item_id"]: r for r in read_results(str(run / "results")).to_pylist()}
    assert {r["status"] for r in rows.values()} == {"ok"} and {r["frozen_audio_sigma"] for r in rows.values()} == {
        "zero"
    }
    a, b, one = rows["two-a"], rows["two-b"], rows["one"]
    assert a["prompt_enhanced"] == b["prompt_enhanced"] != one["prompt_enhanced"]  # two shards, one enhancement
    assert a["prompt"] == "A presenter talks" and a["prompt_enhanced"]
    assert [(i["frame"], i["strength"]) for i in a["images"]] == [(0, 1.0), (8, 0.7)]
    assert one["images"] == [{"path": str(LESSON / "presenter.png"), "frame": 0, "strength": 1.0, "crf": 33}]
    assert one["image"] == str(LESSON / "presenter.png")  # the shorthand as written, beside the resolved list
    assert a["loras"] == [{"path": lora, "strength": 0.8}] and one["loras"] == [{"path": lora, "strength": 1.0}]
    assert b["loras"] == []  # the same shard layout without the LoRA

    card = {c["id"]: c for c in report_cards(build_report(str(run)).read_text())}["two-b"]
    assert card["enhanced"] == b["prompt_enhanced"] and dict(card["facts"])["images"].endswith("pose.png @8 ×0.7")

    part = next(p for p in (run / "results").glob("*.parquet") if "one" in pq.read_table(p)["item_id"].to_pylist())
    table = pq.read_table(part)  # as if "one" had failed after its prompt was enhanced
    pq.write_table(pa.Table.from_pylist([{**r, "status": "failed"} for r in table.to_pylist()], table.schema), part)
    assert main(["--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 items to render" in out and _enhanced_count(out) == 0  # read back, not generated again
    again = [r for r in read_results(str(run / "results")).to_pylist() if r["item_id"] == "one"]
    assert len(again) == 2 and {r["prompt_enhanced"] for r in again} == {one["prompt_enhanced"]}
