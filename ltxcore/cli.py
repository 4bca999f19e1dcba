"""Render one clip with the resident engine: ``python -m ltxcore.cli --bundle DIR --audio A --prompt P --out X``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ltxcore.bundle import QUANTIZATIONS, ModelBundle
from ltxcore.engine import Engine
from ltxcore.errors import BundleError, RenderInputError
from ltxcore.mp4 import probe_mp4
from ltxcore.request import FROZEN_AUDIO_SIGMAS, GuiderSettings, ImageCondition, LoraSpec, RenderRequest


def _image(values: list[str]) -> ImageCondition:
    """``--image PATH FRAME STRENGTH [CRF]``, as upstream's; a bare PATH conditions frame 0 at strength 1."""
    if len(values) not in (1, 3, 4):
        raise argparse.ArgumentTypeError(f"--image takes PATH [FRAME STRENGTH [CRF]], got {' '.join(values)}")
    if len(values) == 1:
        return ImageCondition(values[0])
    return ImageCondition(values[0], int(values[1]), float(values[2]), *(int(v) for v in values[3:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", required=True, help="folder with the released LTX-2.3 file names")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="none")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--audio", required=True)
    parser.add_argument(
        "--image",
        action="append",
        nargs="+",
        default=[],
        metavar="ARG",
        help="PATH [FRAME STRENGTH [CRF]], repeatable, as upstream's --image",
    )
    parser.add_argument("--enhance-prompt", action="store_true")
    parser.add_argument("--frozen-audio-sigma", choices=FROZEN_AUDIO_SIGMAS, default=FROZEN_AUDIO_SIGMAS[0])
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
        request = RenderRequest(
            audio=args.audio,
            images=tuple(_image(values) for values in args.image),
            enhance_prompt=args.enhance_prompt,
            frozen_audio_sigma=args.frozen_audio_sigma,
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
        if problems := request.problems():
            print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
            return 2
        bundle = ModelBundle.from_folder(args.bundle, quantization=args.quantization)
        start = time.perf_counter()
        engine = Engine(bundle, device=args.device)
        loaded = time.perf_counter() - start
        result = engine.render(request, args.out)
    except (BundleError, RenderInputError, argparse.ArgumentTypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    probe = probe_mp4(args.out)
    report = {
        "output": args.out,
        "load_seconds": round(loaded, 3),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "prompt_enhanced": result.prompt_enhanced,
        "peak_memory_bytes": result.peak_memory,
        "probe": probe.__dict__,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
