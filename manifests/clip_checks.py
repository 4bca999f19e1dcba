"""Checks of a clip against what the model and the audio allow: the token bound (an error) and a video
much longer than its audio window (a warning: silence padding is legal, but rarely meant).

Both need the clip's frame count; when the manifest leaves it to the audio, it is derived as the plan will
derive it, from the seconds of its audio file (``manifests.media_facts``).
"""

from __future__ import annotations

from ltxcore.request import audio_window, frames_for_audio
from ltxcore.shapes import render_length
from ltxcore.token_bound import MAX_TOKENS, token_problem
from manifests.item import Item
from manifests.windows import settings_of

# A video may outlast its audio window by this much before validation warns: more than the 8-frame step
# (0.33 s at 24 fps) that frame counts once came in, so a count rounded up to the next 8k+1 never warns.
WINDOW_MARGIN_SECONDS = 0.5


def clip_frames(item: Item, seconds: float | None) -> int | None:
    """The frames the clip shows: as set, or as the plan will derive them from ``seconds`` of audio (None if
    unknown)."""
    if item.num_frames is not None or seconds is None or audio_window(item, seconds) <= 0:
        return item.num_frames
    return frames_for_audio(item, seconds)


def size_problems(item: Item, seconds: float | None, max_tokens: int = MAX_TOKENS) -> list[tuple[str, str]]:
    """The token bound of the frames one window renders (a longer clip renders as several, none longer than the
    longest), as (field, message); nothing when the frame count cannot be known yet."""
    frames = clip_frames(item, seconds)
    if frames is None:
        return []
    if isinstance(item.window_seconds, (int, float)) and item.window_seconds > 0:
        frames = render_length(min(frames, settings_of(item).window_frames(item.frame_rate)))
    problem = token_problem(frames, item.height, item.width, max_tokens)
    return [("height", problem)] if problem else []


def window_warnings(item: Item, seconds: float | None) -> list[tuple[str, str]]:
    """A clip that runs past its audio window by more than the margin, as (field, message)."""
    if item.num_frames is None or seconds is None or (window := audio_window(item, seconds)) <= 0:
        return []
    seconds = item.num_frames / item.frame_rate
    if seconds <= window + WINDOW_MARGIN_SECONDS:
        return []
    return [
        (
            "num_frames",
            f"{item.num_frames} frames at {item.frame_rate:g} fps last {seconds:.2f} s, {seconds - window:.2f} s "
            f"longer than the audio window ({window:.2f} s); that part is rendered over silence. Leave num_frames "
            "out to fit the clip to the audio.",
        )
    ]
