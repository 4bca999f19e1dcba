"""How many video tokens a clip has at stage 2, and the most a render may ask for.

Stage 2 runs the transformer at full size on ``((frames - 1) / 8 + 1) x (height / 32) x (width / 32)`` tokens
(the VAE compresses time by 8 and space by 32). Kept free of torch so the CLI can name the default.

The default bound is what fits the largest supported GPU, an H200 (140.4 GiB as its driver reports it),
estimated from the reference clip (768x512, 97 frames: 13 x 16 x 24 = 4,992 tokens; BENCHMARKS.md):

- its peak is 34.1 GiB, nearly all of it fixed: 32.3 GiB of weights are resident after loading, and the
  VAE decode is tiled, so its workspace does not grow with the clip. We count all 34.1 GiB as fixed.
- attention is computed without an N x N score matrix (flash / memory-efficient SDPA), so activation memory
  grows linearly with the tokens: stage 2 adds 0.78 GiB over the resident weights at 4,992 tokens, about
  0.16 MiB per token (stage 1 runs its guidance passes as one batch at a quarter of the tokens each: the
  same total). We allow 0.5 MiB per token, 3x that, for the uncompiled path and the bf16 quantizations.
  Measured since (``python -m tools.bench tokens``, BENCHMARKS.md): the eager FP8 stage-2 forward adds
  0.30 MiB per token, linearly from 4,992 to 67,320 tokens.
- 10% of the card is left to the CUDA context, cuDNN workspaces and allocator fragmentation.

So (0.9 x 140.4 - 34.1) GiB / 0.5 MiB = 188,948 tokens, rounded down to 188,000. Clips above it cannot
fit any GPU we support; ``--max-tokens`` moves the bound (for a bigger card, or to refuse earlier: an
80 GB H100 holds about 120,000 by the measured slope).
"""

from __future__ import annotations

from ltxcore.shapes import FRAME_STEP

PIXELS_PER_LATENT = 32
GPU_GIB = 140.4
USABLE_SHARE = 0.9
FIXED_GIB = 34.1
ACTIVATION_MIB_PER_TOKEN = 0.5
MAX_TOKENS = int((USABLE_SHARE * GPU_GIB - FIXED_GIB) * 1024 / ACTIVATION_MIB_PER_TOKEN) // 1000 * 1000
MAX_TOKENS_HELP = f"refuse clips above this many stage-2 video tokens (default {MAX_TOKENS:,}, what fits an H200)"


def video_tokens(num_frames: int, height: int, width: int) -> int:
    """Stage-2 video tokens of a clip (frames 8k+1, sizes multiples of 32)."""
    return ((num_frames - 1) // FRAME_STEP + 1) * (height // PIXELS_PER_LATENT) * (width // PIXELS_PER_LATENT)


def token_problem(num_frames: int, height: int, width: int, max_tokens: int = MAX_TOKENS) -> str | None:
    """Why a clip is too large for the bound, with the numbers; None if it fits."""
    tokens = video_tokens(num_frames, height, width)
    if tokens <= max_tokens:
        return None
    latent = ((num_frames - 1) // FRAME_STEP + 1, height // PIXELS_PER_LATENT, width // PIXELS_PER_LATENT)
    origin = (
        f"what fits an H200's {GPU_GIB:g} GiB: {FIXED_GIB:g} GiB of weights and buffers plus about "
        f"{ACTIVATION_MIB_PER_TOKEN:g} MiB of activations per token"
        if max_tokens == MAX_TOKENS
        else "set with --max-tokens"
    )
    return (
        f"{width}x{height} at {num_frames} frames is {tokens:,} video tokens at stage 2 "
        f"({latent[0]} x {latent[1]} x {latent[2]}), above the bound of {max_tokens:,} ({origin}). "
        "Lower the size or the frame count, or change the bound with --max-tokens."
    )
