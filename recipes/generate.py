"""`python -m recipes.generate INPUT --out OUT [--label TEXT] [--preset paper|fast] [--mp4]`

Soundtracks for videos of any length. INPUT is a video file, a folder of videos, or a
VGGSound-style CSV (id,start,label,split; videos in --video-dir, default: videos/ beside it),
whose labels are used unless --label is given; a folder with a metadata.csv uses that. OUT is a
folder (one {id}.wav per video, and {id}.mp4 with --mp4), or for a single video also a .wav path.
Videos are rendered in batches through the UNet; a video that cannot be read is reported and
skipped, the others are written, and the exit status is 1 if any failed (2: a wrong command line). --skip-existing
resumes an interrupted batch. Without --mapper the mapper of the last train_mapper run is used.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from extractors.manifest import VIDEO_SUFFIXES, list_clips
from extractors.video import MediaReadError, probe_duration
from mapper.generation.long_form import JOIN_MODES
from mapper.generation.sampling import NEGATIVE_MODES, SAMPLING_PRESETS
from recipes.cli import ITEMS_FAILED, usage_error


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recipes.generate", description=__doc__.split("\n")[2])
    parser.add_argument("input", help="video file, folder of videos, or VGGSound-style CSV")
    parser.add_argument("--out", required=True, help="output folder, or a .wav path for a single video")
    parser.add_argument("--label", default=None, help='sound label (Flan-T5 prompt) for all videos: "dog barking"')
    parser.add_argument("--video-dir", default=None, help="where a CSV's videos are (default: videos/ beside it)")
    parser.add_argument("--mp4", action="store_true", help="also write the video with the generated audio muxed in")
    parser.add_argument("--mapper", default=None, help="saved mapper or pipeline folder (default: last trained)")
    parser.add_argument("--audioldm2", default=None, help="override the AudioLDM-2: 'tiny', a local folder or a hub id")
    parser.add_argument("--extractors", default=None, help="override the extractor preset")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--preset", default="paper", choices=sorted(SAMPLING_PRESETS),
                          help="paper: DDIM 100 steps CFG 3.5; fast: DPM-Solver++ 25 steps")  # fmt: skip
    sampling.add_argument("--scheduler", default=None, help="any compatible diffusers scheduler class name")
    sampling.add_argument("--steps", type=int, default=None, help="number of sampling steps")
    sampling.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    sampling.add_argument("--negative-prompt", default=None)
    sampling.add_argument("--negative-mode", default=None, choices=NEGATIVE_MODES)
    sampling.add_argument("--seed", type=int, default=0)
    long_form = parser.add_argument_group("long videos")
    long_form.add_argument("--mode", default="inpaint", choices=JOIN_MODES, help="how windows are joined")
    long_form.add_argument("--overlap", type=float, default=None, help="seconds shared by consecutive windows")
    long_form.add_argument("--reference-audio", default=None, help="a sound the soundtrack continues")
    long_form.add_argument("--duration", type=float, default=None, help="render at most this many seconds per video")
    run = parser.add_argument_group("run")
    run.add_argument("--batch-size", type=int, default=4, help="videos rendered together")
    run.add_argument("--device", default="cpu")
    run.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    run.add_argument("--skip-existing", action="store_true", help="keep outputs that already exist")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Job:
    """One video and where its outputs go."""

    video: Path
    label: str
    start: float
    wav: Path
    mp4: Path | None


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """The videos of INPUT with their output paths (raises FileNotFoundError / ValueError)."""
    source, out = Path(args.input), Path(args.out)
    single = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES
    if single or (not source.exists() and source.suffix.lower() in VIDEO_SUFFIXES):
        items = [(source.stem, source, 0.0, "")]  # a missing single video fails later, as a bad file
    else:
        items = [(c.id, c.path, c.start, c.label) for c in list_clips(source, args.video_dir)]
    if out.suffix.lower() == ".wav":
        if len(items) != 1:
            raise ValueError(f"--out {out} is a .wav file but {source} holds {len(items)} videos; give a folder")
        wavs = [out]
    else:
        wavs = [out / f"{name}.wav" for name, *_ in items]
    jobs = []
    for (_, path, start, label), wav in zip(items, wavs):
        label = args.label if args.label is not None else label
        jobs.append(Job(path, label, start, wav, wav.with_suffix(".mp4") if args.mp4 else None))
    return jobs


class WavSink:
    """Streams one soundtrack into its wav, atomically: a temporary file beside it is renamed
    into place when the soundtrack is complete, and removed if it never is."""

    def __init__(self, path: Path, sample_rate: int):
        import uuid

        import soundfile as sf

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.samples = path, 0
        self._tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.wav")
        self._file = sf.SoundFile(
            str(self._tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV"
        )

    def write(self, samples) -> None:
        import numpy as np

        self._file.write(np.clip(samples, -1.0, 1.0))
        self.samples += len(samples)

    def close(self, ok: bool) -> None:
        self._file.close()
        if ok:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mapper.generation.long_form import LongFormConfig
    from mapper.generation.mux import mux_audio
    from mapper.generation import AudioChunk, ClipDone, GenerationRequest, load_pipeline
    from mapper.generation.sampling import sampling_config

    try:
        jobs = plan_jobs(args)
        sampling = sampling_config(
            args.preset, scheduler=args.scheduler, num_inference_steps=args.steps, guidance_scale=args.guidance,
            negative_prompt=args.negative_prompt, negative_mode=args.negative_mode,
        )  # fmt: skip
        long_form = LongFormConfig(args.mode, **({} if args.overlap is None else {"overlap_seconds": args.overlap}))
    except (FileNotFoundError, ValueError) as error:
        return usage_error(error)
    if args.skip_existing:
        jobs = [j for j in jobs if not (j.wav.is_file() and (j.mp4 is None or j.mp4.is_file()))]
    if not jobs:
        print("nothing to do: every output exists")
        return 0
    if len(jobs) == 1:  # fail fast, before loading any model, on the one video there is
        try:
            probe_duration(jobs[0].video)
        except MediaReadError as error:
            print(f"error: {error}", file=sys.stderr)
            return ITEMS_FAILED
    try:
        pipeline = load_pipeline(mapper=args.mapper, audioldm2=args.audioldm2, extractors=args.extractors,
                                 device=args.device, dtype=args.dtype, progress=not args.no_progress)  # fmt: skip
    except (FileNotFoundError, ValueError, OSError) as error:
        return usage_error(error)
    pipeline.set_progress_bar_config(disable=args.no_progress, leave=False)  # step bars vanish when done
    requests = [GenerationRequest(j.video, j.label, j.start, args.duration, args.reference_audio) for j in jobs]
    sinks: dict[int, WavSink] = {}
    failed: list[str] = []
    try:
        for event in pipeline.stream(requests, sampling, long_form, args.seed, batch_size=args.batch_size):
            job = jobs[event.index]
            if isinstance(event, AudioChunk):
                if event.index not in sinks:
                    sinks[event.index] = WavSink(job.wav, pipeline.sample_rate)
                sinks[event.index].write(event.samples)
                continue
            sink = sinks.pop(event.index, None)
            if not isinstance(event, ClipDone):
                if sink is not None:
                    sink.close(ok=False)
                failed.append(str(event.error))
                print(f"error: {event.error}", file=sys.stderr)
                continue
            sink.close(ok=True)
            if job.mp4 is not None:
                try:
                    mux_audio(job.video, job.wav, job.mp4)
                except MediaReadError as error:
                    failed.append(str(error))
                    print(f"error: {error}", file=sys.stderr)
                    continue
            written = f"{job.wav}" + (f" and {job.mp4}" if job.mp4 else "")
            print(f"wrote {written}: {sink.samples / pipeline.sample_rate:.2f} s at {pipeline.sample_rate} Hz")
    finally:
        for sink in sinks.values():
            sink.close(ok=False)
    if failed and len(jobs) > 1:
        print(f"{len(failed)} of {len(jobs)} videos failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    return ITEMS_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
