"""A full-length lesson rendered as windows (``python -m tools.bench longform``): wall time per item and GPU
seconds per second of video for finals and drafts, ``continuous`` and ``cuts``, next to a single window of the
same size from the same invocation; and the worker's host-memory peak for a long item against a one-window one.

The lesson is the example's three recordings (English, German, Spanish), joined with half-second pauses and
repeated to ``seconds``: real speech with real pauses for the boundaries. On one resident engine (compiled, as a
worker), every window length an item renders is warmed up first (its compile is reported apart; a
``continuous`` item is rendered once untimed too, as its later windows carry the image as keyframe tokens, other
graphs; the single window is rendered once untimed, so its figure is a steady-state window as a long item's later
windows are), then the item is rendered and timed. A window's shown frames are encoded by the worker's encoder process
while the next window renders; the item's mp4 is joined from them with the original audio once
(``ltxcore/long_form.py``). GPU seconds per second of video
is the steady wall over the clip's seconds: the host's share is in it, as a user pays it.

``--host-memory`` instead renders one item in a fresh process per length and reports its peak resident memory
(the worker's view: model, one window's frames, the encoder), on any device.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from ltxcore.mp4 import probe_mp4
from ltxcore.render_result import RenderResult
from ltxcore.request import RenderRequest
from ltxcore.shapes import frames_for_duration
from tools.long_lesson import write_lesson
from tools.reference_clip import GUIDER, IMAGE, PROMPT


def lesson_request(audio: Path, seconds: float, fps: float, **settings) -> RenderRequest:
    """The lesson at the reference size, ``settings`` (pipeline, long_form, ...) applied."""
    base = RenderRequest(
        audio=str(audio),
        prompt=PROMPT.format("lesson"),
        seed=7,
        image=str(IMAGE),
        guider=GUIDER,
        height=512,
        width=768,
        frame_rate=fps,
        num_frames=frames_for_duration(seconds, fps),
        num_inference_steps=30,
    )
    return replace(base, **settings)


def _windows(request: RenderRequest):
    from ltxcore.pauses import find_pauses
    from ltxcore.windows import plan_windows

    settings = request.window_settings
    if request.frames <= settings.window_frames(request.frame_rate):
        return tuple(plan_windows(request.frames, request.frame_rate, settings))
    pauses = find_pauses(request.audio, request.audio_start_time, request.frames / request.frame_rate)
    return tuple(plan_windows(request.frames, request.frame_rate, settings, pauses.spans))


def _timed(engine, request: RenderRequest, out: Path) -> tuple[float, RenderResult]:
    from ltxcore.long_form import WindowFolder, render_windows
    from tools.timing import synchronize

    shutil.rmtree(out.with_suffix(".windows"), ignore_errors=True)
    synchronize(engine.device)
    start = time.perf_counter()
    result = render_windows(engine, request, _windows(request), out, WindowFolder(out.with_suffix(".windows")))
    return time.perf_counter() - start, result


def run(
    bundle_dir: str, seconds: float, out: Path, pipelines: list[str], modes: list[str], compile: bool = True
) -> dict:
    """Per pipeline: one window of the default length, then the lesson in each of ``modes``."""
    import torch

    from ltxcore.bundle import ModelBundle
    from ltxcore.engine import Engine
    from tools.reference_clip import ensure_bundle

    fps = 25.0
    audio = write_lesson(out.parent / "lesson.wav", seconds)
    folder, _ = ensure_bundle(Path(bundle_dir))
    engine = Engine(ModelBundle.from_folder(folder, quantization="fp8-scaled"), "cuda", compile=compile)
    report: dict = {"seconds": seconds, "fps": fps, "size": "768x512", "device": torch.cuda.get_device_name()}
    report["compile"] = compile
    report["runs"] = []
    for pipeline in pipelines:
        single = lesson_request(audio, 10.0, fps, pipeline=pipeline)
        window = single.window_settings.window_frames(fps)
        single = replace(single, num_frames=window)  # one whole window: today's single-window figure
        entries = [("single-window", single)] + [
            (mode, lesson_request(audio, seconds, fps, pipeline=pipeline, long_form=mode)) for mode in modes
        ]
        for name, request in entries:
            path = out.parent / f"{pipeline}-{name}.mp4"
            shapes = sorted({w.rendered for w in _windows(request)})
            started = time.perf_counter()  # compile and warm every window length first, as a worker would
            for frames in shapes:
                engine.warm_up(replace(request, num_frames=frames))
            if name == "single-window" or (compile and name == "continuous"):
                _timed(engine, request, path)  # a steady-state window (first-call costs paid); continuous: other graphs
            warm_up = time.perf_counter() - started
            wall, result = _timed(engine, request, path)
            video_s = probe_mp4(path).frames / fps
            row = {
                "pipeline": pipeline,
                "item": name,
                "video_seconds": video_s,
                "windows": max(1, len(result.windows)),
                "window_lengths": shapes,
                "rendered_frames": sum(w.rendered for w in _windows(request)),
                "warm_up_s": warm_up,
                "wall_s": wall,
                "gpu_s_per_video_s": wall / video_s,
                "phases_s": result.timings,  # summed over windows; mux is the encode (overlapped for windows)
                "device_phases_per_video_s": sum(v for k, v in result.timings.items() if k != "mux") / video_s,
                "window_seconds": [w.seconds for w in result.windows],
            }
            report["runs"].append(row)
            print(json.dumps(row), flush=True)
        base = next(r for r in report["runs"] if r["pipeline"] == pipeline and r["item"] == "single-window")
        for r in report["runs"]:
            if r["pipeline"] == pipeline:
                r["vs_single_window"] = r["gpu_s_per_video_s"] / base["gpu_s_per_video_s"]
    return report


def host_memory(bundle_dir: str, lengths: list[float], out: Path, device: str, size: tuple[int, int]) -> dict:
    """Peak resident memory of a fresh process rendering one draft item of each length. The lesson is written
    here, not in that process: synthesising a 10-minute WAV peaks higher than rendering it does."""
    report: dict = {"device": device, "size": f"{size[1]}x{size[0]}", "items": []}
    for seconds in lengths:
        audio = write_lesson(out.parent / f"lesson-{seconds:g}.wav", seconds)
        code = [sys.executable, "-m", "tools.bench_longform", bundle_dir, str(audio), str(seconds), device]
        done = subprocess.run([*code, str(size[0]), str(size[1])], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        report["items"].append(row)
        print(json.dumps(row), flush=True)
    return report


def _one_item(bundle_dir: str, audio: Path, seconds: float, device: str, height: int, width: int) -> dict:
    from ltxcore.bundle import ModelBundle
    from ltxcore.engine import Engine

    engine = Engine(ModelBundle.from_folder(bundle_dir), device=device)
    request = lesson_request(audio, seconds, 25.0, pipeline="distilled", height=height, width=width)
    blocks = tuple(b for b in request.guider.stg_blocks if b < engine.num_layers) or (engine.num_layers - 1,)
    request = replace(request, guider=replace(request.guider, stg_blocks=blocks))  # a tiny bundle has few blocks
    wall, result = _timed(engine, request, audio.with_name(f"memory-{seconds:g}.mp4"))
    peak_mib = _peak_rss_mib()
    return {"seconds": seconds, "windows": len(result.windows) or 1, "wall_s": wall, "peak_rss_mib": peak_mib}


def _peak_rss_mib() -> float:
    """This process's own peak resident memory: Linux's ``VmHWM`` starts afresh at exec, where ``ru_maxrss``
    keeps the peak of the process that forked it (here the bench, holding torch and the lessons)."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":  # one host-memory item, in a process of its own
    bundle, lesson, length, dev, h, w = sys.argv[1:7]
    print(json.dumps(_one_item(bundle, Path(lesson), float(length), dev, int(h), int(w))))
