"""The mapper tokens a sampling window conditions on: those of the video its clip holds.

The mapper predicts AudioLDM-2's GPT-2 stream for one clip window of video: ``num_audio_tokens`` pooled
AudioMAE tokens, time-major, each row of them describing ``AudioMAEConfig.token_seconds`` (1.28 s) of the
clip. When less than a clip window is rendered (a video shorter than the window, zero-padded before the
mapper sees it, or a ``duration`` shorter than it), the window the pipeline samples is that length
(``plan_windows``), and the rows past its end describe padding or video that is not rendered. The
decoder's cross-attention carries no position, so they would still pull the whole render towards their
sound, or their silence, anywhere in the window. Such a window therefore conditions on the leading tokens
only, the rows whose span lies mostly inside what is rendered (``AudioMAEConfig.tokens_within``); the
negative stream of classifier-free guidance is cut alike (``VideoToAudioPipeline.conditions``). A whole
clip window keeps all of its tokens, so a video of a clip window or longer renders exactly as before.

Measured on the toy recipe's 30 held-out clips, 11 of them 5-9 s, each rendered at its own length as the
pipeline renders it, fast preset, timing control at 0.045, ten sampling seeds (``benchmarks.sync_guidance
--own-length``; docs/generation.md), against all eight tokens: event-sync error 0.107 s instead of 0.159 s
(the 11 short clips 0.193 s instead of 0.334 s), unguided FD 7.22 instead of 8.09, class accuracy 0.890
instead of 0.883 (unguided 0.897 instead of 0.887).
"""
from __future__ import annotations

from extractors.audiomae import AudioMAEConfig


def window_token_count(audiomae: AudioMAEConfig, num_tokens: int, video_seconds: float) -> int:
    """Of a clip's ``num_tokens`` mapper tokens, how many a window conditions on when its clip holds
    ``video_seconds`` of video: all of them for a whole clip, the leading rows inside the video otherwise.
    Tokens of another layout than ``audiomae``'s grid (no known time per token) are all kept."""
    if num_tokens != audiomae.num_tokens:
        return num_tokens
    return audiomae.tokens_within(video_seconds)
