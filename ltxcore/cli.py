"""Render one clip with the resident engine: ``python -m ltxcore.cli --bundle DIR --audio A --prompt P --out X``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ltxcore.bundle import QUANTIZATIONS, ModelBundle
from ltxcore.engine import Engine
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.media import probe_mp4
from ltxcore.request import GuiderSettings, LoraSpec, RenderRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", required=True, help="folder with the released LTX-2.3 file names")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="none")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--audio", required=True)
    parser.add_argument("--image")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--num-frames", type=int)
    parser.add_argument("--frame-rate", type=float, default=25.0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--stg-blocks", type=int, nargs="*", default=[28])
    parser.add_argument(
        "--lora", nargs="+", action="append", default=[], metavar=("PATH", "STRENGTH"), help="repeatable, as upstream's"
    )
    parser.add_argument("--out", required=True, help="output .mp4")
    args = parser.parse_args(argv)
    try:
        bundle = ModelBundle.from_folder(args.bundle, quantization=args.quantization)
        start = time.perf_counter()
        engine = Engine(bundle, device=args.device)
        loaded = time.perf_counter() - start
        request = RenderRequest(
            audio=args.audio,
            image=args.image,
            prompt=args.prompt,
            seed=args.seed,
            height=args.height,
            width=args.width,
            num_frames=args.num_frames,
            frame_rate=args.frame_rate,
            num_inference_steps=args.steps,
            guider=GuiderSettings(stg_blocks=tuple(args.stg_blocks)),
            loras=tuple(map(LoraSpec.parse, args.lora)),
        )
        result = engine.render(request, args.out)
    except (BundleError, RenderInputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    probe = probe_mp4(args.out)
    report = {
        "output": args.out,
        "load_seconds": round(loaded, 3),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "peak_memory_bytes": result.peak_memory,
        "probe": probe.__dict__,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
