"""Put a generated soundtrack into (a copy of) its video: video stream copied, audio encoded to AAC.

The video stream's packets are copied as they are (no decode, no re-encode: same pictures, same
timestamps, no quality loss and little time); the video's own audio tracks are dropped; the
soundtrack is encoded as mono AAC at its own sample rate, read block by block from the wav so a
long video needs no more memory than a short one. Packets of both streams are written in time
order, and the file appears atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from extractors.atomic import atomic_path
from extractors.video import VideoReadError

AAC_BIT_RATE = 128_000


def _audio_packets(wav: Path, stream: av.audio.stream.AudioStream, block: int):
    """Encoded AAC packets of ``wav``, in order, encoded one block at a time."""
    pts = 0
    with sf.SoundFile(str(wav)) as source:
        for samples in source.blocks(blocksize=block, dtype="float32", always_2d=True):
            mono = np.ascontiguousarray(samples.mean(axis=1))[None]  # (1, S)
            frame = av.AudioFrame.from_ndarray(mono, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = source.samplerate, pts
            pts += len(samples)
            yield from stream.encode(frame)
    yield from stream.encode(None)


def mux_audio(video: str | os.PathLike, wav: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write ``out`` (.mp4): ``video``'s video stream, copied, with ``wav`` as its only audio."""
    video, wav, out = Path(video), Path(wav), Path(out)
    if out.resolve() == video.resolve():
        raise VideoReadError(video, f"refusing to overwrite the input video with its muxed copy {out}")
    rate = sf.info(str(wav)).samplerate
    try:
        source = av.open(str(video))
    except av.FFmpegError as error:
        raise VideoReadError(video, f"not a readable video (ffmpeg: {error.strerror})") from None
    with source, atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as target:
        if not source.streams.video:
            raise VideoReadError(video, "no video stream")
        video_in = source.streams.video[0]
        video_out = target.add_stream_from_template(video_in)
        audio_out = target.add_stream("aac", rate=rate, layout="mono")
        audio_out.bit_rate = AAC_BIT_RATE
        audio = _audio_packets(wav, audio_out, block=rate)
        pending = next(audio, None)
        for packet in source.demux(video_in):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            now = float(packet.dts * packet.time_base)
            while pending is not None and float(pending.pts * pending.time_base) <= now:
                target.mux(pending)
                pending = next(audio, None)
            packet.stream = video_out
            target.mux(packet)
        while pending is not None:
            target.mux(pending)
            pending = next(audio, None)
