"""The mapper tokens a sampling window conditions on: those of the video its clip holds.

The mapper predicts AudioLDM-2's GPT-2 stream for one clip window of video: ``num_audio_tokens`` pooled
AudioMAE tokens, time-major, each row of them describing ``AudioMAEConfig.token_seconds`` (1.28 s) of the
clip. A video shorter than the clip window is zero-padded before the mapper sees it, so the tokens of the
rows past its end are predicted from padding; the window the pipeline renders for it is the video's own
length (``plan_windows``), and the decoder's cross-attention carries no position, so those tokens describe
no part of that window and still pull the whole render towards whatever the padding suggested. A window
whose clip holds less than a whole clip window of video therefore conditions on the leading tokens only,
the rows whose span lies mostly inside the video (``AudioMAEConfig.tokens_within``); the negative stream
of classifier-free guidance is cut alike (``VideoToAudioPipeline.conditions``). A whole clip keeps all of
its tokens, so a video of a clip window or longer renders exactly as before.
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
