"""A run folder the size of a big campaign, written by the run store's own writers, so ``ltx-batch status`` and
``ltx-batch report`` can be tried and timed at scale without rendering anything:

    python -m tools.synthetic_run runs/synthetic-100k 100000

The plan holds ``items`` items (tags ``lang`` and ``batch``); each shard of ``attempts_per_file`` items has an
attempt file as a worker leaves it after its last item, a tenth of the shards a second attempt after their worker
died, and a resume (a second driver session) re-renders the items that failed (a fifth of them at first). The
newest 2% of shards are not rendered yet (pending). About 3% of items end failed, with a few kinds of error whose
messages name the item's files; most ok clips carry quality scores, some only in a late revision
(``runstore.results.revise``), and a few are long items with seam scores. 100,000 items give about 118,000 rows
in 16,000 files, and the results cache a driver's end-of-run summary leaves. Every value comes from a generator
seeded by ``items``: one call always writes the same rows.
"""

from __future__ import annotations

import hashlib
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.item import Item
from quality.score_fields import SCORE_NAMES, unscored
from ray_jobs.summary import run_summary
from runstore.plan import PlannedItem, derive_seed, fingerprint
from runstore.results import RESULT_SCHEMA, attempt_path, error_text, result_row, revise
from runstore.run_folder import RunFolder
from storage.fs import filesystem, write_atomically

T0 = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
WORKERS = 16  # shards rendering at once
ITEM_SECONDS = 30.0
LANGS = ("en", "de", "es", "fr", "it")
# (error type, first line of the message): formatted with the item's id, audio and video paths
ERRORS = (
    ("RenderInputError", "audio: could not be decoded: {audio}"),
    ("OSError", "[Errno 28] No space left on device: '{video}'"),
    ("CUDAOutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB"),
    ("RenderInputError", "image: cannot identify image file '/data/campaign/images/presenter-{lang}.png'"),
)
TRACE = 'Traceback (most recent call last):\n  File "ray_jobs/actor.py", line 220, in render_shard\n'
FIRST_SESSION, RESUME_SESSION = "1f0c2a9d3b4e", "7a8b9c0d1e2f"  # driver sessions: the render, then a resume
BUNDLE = {"checkpoint": "ltx-2.3-22b-dev.safetensors", "size": 46_000_000_000}


def _item(template: Item, n: int) -> Item:
    item_id = f"item-{n:06d}"
    lang = LANGS[n % len(LANGS)]
    return template.model_copy(
        update={
            "id": item_id,
            "audio": f"/data/campaign/audio/{lang}/{item_id}.wav",
            "prompt": f"A presenter speaks {lang} to the camera, take {n % 7}",
            "seed": derive_seed(5, item_id),
            "tags": {"lang": lang, "batch": f"b{n // 10_000:02d}"},
        }
    )


def synthetic_plan(items: int) -> list[PlannedItem]:
    """``items`` planned items, their fingerprints made by the plan's own hash (no file is probed)."""
    template = Item.model_validate(
        {"id": "template", "audio": "a.wav", "image": "/data/campaign/images/presenter.png", "prompt": "p"}
    ).model_copy(update={"num_frames": 97, "pipeline": "distilled"})
    out = []
    for n in range(items):
        item = _item(template, n)
        media = {"audio": {"size": 480_000 + n, "mtime_ns": n}, "image": {"size": 91_000, "mtime_ns": 0}}
        out.append(PlannedItem(item, fingerprint(item.values, media, BUNDLE)))
    return out


def _quality(rng: random.Random) -> dict | None:
    """A worker's quality record: mostly scores, sometimes no face, some clips (long ones) with seams."""
    draw = rng.random()
    if draw < 0.1:
        return unscored("no face found in any checked frame", 1.5, face_found_fraction=0.0)
    if draw < 0.15:
        return None  # scores still pending when the row was written
    scores = {
        "lipsync_offset_frames": rng.randint(-3, 3),
        "lipsync_confidence": round(rng.uniform(0.2, 1.6), 3),
        "flicker": round(rng.uniform(0.1, 3.0), 3),
        "landmark_jitter": round(rng.uniform(0.1, 2.0), 3),
        "identity_similarity": round(rng.uniform(0.5, 0.99), 3),
        "face_found_fraction": 1.0,
    }
    record = {**dict.fromkeys(SCORE_NAMES), **scores, "reason": None, "seconds": 2.0}
    if draw > 0.99:
        seams = [round(rng.uniform(0.8, 5.0), 3), round(rng.uniform(0.8, 5.0), 3)]
        windows = [
            {"start": s, "frames": 40, "lipsync_offset_frames": 0, "lipsync_confidence": 1.0}
            | {"identity_similarity": 0.9, "colour_shift": 0.5}
            for s in (0, 40, 80)
        ]
        record.update(worst_seam=max(seams), worst_seam_frame=40 + 40 * seams.index(max(seams)), windows=windows)
        record["seams"] = seams
    return record


def _outcome(rng: random.Random, p: PlannedItem, start: datetime, fail: float) -> dict:
    """One attempt's fields: failed with one of ``ERRORS`` (probability ``fail``), else ok."""
    finish = start + timedelta(seconds=ITEM_SECONDS * rng.uniform(0.7, 1.3))
    fields = {"started_at": start, "finished_at": finish, "host": f"gpu-{rng.randrange(4)}", "device": "cuda:0"}
    if rng.random() < fail:
        kind, message = rng.choice(ERRORS)
        video = f"/runs/campaign/videos/{p.id}.mp4"
        text = message.format(audio=p.item.audio, video=video, lang=p.item.tags["lang"])
        return fields | {"status": "failed", "error_type": kind, "error_message": error_text(text, TRACE)}
    sha = hashlib.sha256(f"{p.id}@{start.isoformat()}".encode()).hexdigest()
    timings = {"encode": 1.2, "denoise": 20.5, "decode": 3.1, "mux": 0.4}
    return fields | {
        "status": "ok",
        "output_uri": f"videos/{p.id}.mp4",
        "output_bytes": 2_400_000,
        "output_sha256": sha,
        "timings": timings,
        "quality": _quality(rng),
    }


class _Writer:
    """Writes shard attempt files as workers leave them, and collects the scores that arrive late."""

    def __init__(self, run: RunFolder, rng: random.Random):
        self.fs, self.root = filesystem(run.results_uri)
        self.fs.create_dir(self.root, recursive=True)
        self.rng = rng
        self.late: list[dict] = []

    def attempt(self, session: str, shard: int, attempt: int, members: list[PlannedItem], start: datetime, fail: float):
        """One attempt file of ``members`` rendered one after another from ``start``; the ids that failed."""
        rows, failed = [], []
        for k, p in enumerate(members):
            outcome = _outcome(self.rng, p, start + timedelta(seconds=k * ITEM_SECONDS), fail)
            rows.append(result_row(p, **outcome) | {"run_id": "synthetic", "shard_id": shard, "attempt": attempt})
            if outcome["status"] == "failed":
                failed.append(p)
            elif outcome["quality"] is None and self.rng.random() < 0.5:  # its scores arrived after the row
                self.late.append({"item_id": p.id, "output_sha256": outcome["output_sha256"]})
                self.late[-1]["quality"] = _quality(self.rng)
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
        path = attempt_path(self.root, session, shard, attempt)
        write_atomically(self.fs, path, lambda stream: pq.write_table(table, stream))
        return failed


def build_synthetic_run(folder: Path, items: int, attempts_per_file: int = 8) -> None:
    """Write a run of ``items`` items into ``folder`` (new or empty), shaped as the module docstring says."""
    rng = random.Random(items)
    run = RunFolder(str(folder))
    run.mark()
    planned = synthetic_plan(items)
    run.record_submission([], planned, {"argv": ["ltx-batch", "render", "campaign.parquet"], "items": items})
    writer = _Writer(run, rng)
    shards = [planned[n : n + attempts_per_file] for n in range(0, items, attempts_per_file)]
    failed: list[PlannedItem] = []
    for shard, members in enumerate(shards[: len(shards) - max(1, len(shards) // 50)]):  # 2% still to render
        start = T0 + timedelta(seconds=(shard // WORKERS) * ITEM_SECONDS * attempts_per_file)
        lost = rng.randrange(len(members)) if shard % 10 == 9 else len(members)  # its worker died on that item
        if lost:  # a worker that dies on its first item leaves no file
            failed += writer.attempt(FIRST_SESSION, shard, 0, members[:lost], start, fail=0.2)
        if lost < len(members):
            failed += writer.attempt(FIRST_SESSION, shard, 1, members[lost:], start + timedelta(hours=1), fail=0.2)
    resumed = T0 + timedelta(days=2)
    for n in range(0, len(failed), attempts_per_file):
        start = resumed + timedelta(seconds=(n // attempts_per_file // WORKERS) * ITEM_SECONDS * attempts_per_file)
        writer.attempt(RESUME_SESSION, len(shards) + n, 0, failed[n : n + attempts_per_file], start, fail=0.15)
    for n in range(0, len(writer.late), 500):  # as the workers' scoring writers send them, a file per batch
        revise(run.results_uri, writer.late[n : n + 500], f"{FIRST_SESSION}-late{n // 500:03d}")
    run_summary(run)  # as each driver session ends: its summary's read leaves the results cache (results_cache.py)


if __name__ == "__main__":
    build_synthetic_run(Path(sys.argv[1]), int(sys.argv[2]))
