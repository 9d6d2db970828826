"""`python -m recipes.generate INPUT --out OUT [--label TEXT] [--preset paper|fast] [--mp4]`

Soundtracks for videos of any length. INPUT is a video file, a folder of videos, or a
VGGSound-style CSV (id,start,label,split; videos in --video-dir, default: videos/ beside it),
whose labels are used unless --label is given; a folder with a metadata.csv uses that. OUT is a
folder (one {id}.wav per video, and {id}.mp4 with --mp4), or for a single video also a .wav path.
Videos are rendered in batches through the UNet; a video that cannot be read, or that is refused by
its limits (frames too small or too large, more than --max-seconds to render), is reported and
skipped, the others are written, and the exit status is 1 if any failed (2: a wrong command line:
every option is checked before any model loads). --skip-existing resumes an interrupted batch; the
hidden temporary files a killed run left beside the outputs are removed on every run. Without --mapper
the mapper of the last train_mapper run is used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from extractors.media_limits import MAX_SECONDS  # a plain number: no torch before the command line is parsed
from recipes.cli import ITEMS_FAILED, OneLineArgumentParser, usage_error

# Everything else (extractors, mapper: torch, diffusers, transformers) is imported once the command line is
# parsed: --help and a wrong option answer at once. The names --help lists are those of their owners, which
# cannot be imported without torch; tests/test_console.py checks that they agree.
SAMPLING_PRESETS = ("paper", "fast", "turbo")  # mapper.generation.sampling.SAMPLING_PRESETS
NEGATIVE_MODES = ("audioldm2", "zeros")  # mapper.decoders.audioldm2.NEGATIVE_MODES
JOIN_MODES = ("inpaint", "crossfade")  # mapper.generation.long_form.JOIN_MODES
DTYPES = ("fp32", "fp16", "bf16")
# The options that are VideoToAudioPipeline.__call__ arguments: its keyword -> the option. The command
# line's request is checked by the pipeline's own checks (check_call), whose errors then name the option.
CALL_OPTIONS = {
    "preset": "--preset", "scheduler": "--scheduler", "num_inference_steps": "--steps", "guidance_scale": "--guidance",
    "negative_prompt": "--negative-prompt", "negative_mode": "--negative-mode", "seed": "--seed", "mode": "--mode",
    "overlap_seconds": "--overlap", "reference_audio": "--reference-audio", "duration": "--duration",
    "max_seconds": "--max-seconds", "batch_size": "--batch-size", "sync_guidance": "--sync-guidance",
}
NUMBERS = ("num_inference_steps", "guidance_scale", "seed", "overlap_seconds", "duration", "max_seconds", "batch_size",
           "sync_guidance")


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, values as strings: `plan_call` turns them into numbers and checks them with the
    Python API's own checks (``VideoToAudioPipeline.check_call``), so both say the same about a bad value."""
    parser = OneLineArgumentParser(prog="python -m recipes.generate", description=__doc__.split("\n")[2].split(". ")[0] + ".")
    parser.add_argument("input", help="video file, folder of videos, or VGGSound-style CSV")
    parser.add_argument("--out", required=True, help="output folder, or a .wav path for a single video")
    parser.add_argument("--label", default=None, help='sound label (Flan-T5 prompt) for all videos: "dog barking"')
    parser.add_argument("--video-dir", default=None, help="where a CSV's videos are (default: videos/ beside it)")
    parser.add_argument("--mp4", action="store_true", help="also write the video with the generated audio muxed in")
    parser.add_argument("--mapper", default=None, help="saved mapper or pipeline folder (default: last trained)")
    parser.add_argument("--audioldm2", default=None, help="override the AudioLDM-2: 'tiny' (random), 'toy' (trained on the toy world), a local folder or a hub id")
    parser.add_argument("--extractors", default=None, help="override the extractor preset")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--preset", default="paper", metavar="{" + ",".join(SAMPLING_PRESETS) + "}",
                          help="paper: DDIM 100 steps CFG 3.5; fast: Euler 25 steps CFG 5; turbo: Euler ancestral 4 steps CFG 5 (Euler for long videos and reference audio)")  # fmt: skip
    sampling.add_argument("--scheduler", default=None, help="any compatible diffusers scheduler class name")
    sampling.add_argument("--steps", default=None, help="number of sampling steps (integer >= 1)")
    sampling.add_argument("--guidance", default=None, help="classifier-free guidance scale (>= 1; 1: none)")
    sampling.add_argument("--negative-prompt", default=None)
    sampling.add_argument("--negative-mode", default=None, metavar="{" + ",".join(NEGATIVE_MODES) + "}")
    sampling.add_argument("--seed", default="0", help="random seed (integer >= 0)")
    sampling.add_argument("--sync-guidance", default=None,
                          help="timing control: pull the sound onto the loudness envelope predicted from the video "
                               "(0: off, the paper's decoding; default: the mapper folder's generation_config.json)")
    long_form = parser.add_argument_group("long videos")
    long_form.add_argument("--mode", default="inpaint", metavar="{" + ",".join(JOIN_MODES) + "}",
                           help="how windows are joined")  # fmt: skip
    long_form.add_argument("--overlap", default=None, help="seconds shared by consecutive windows")
    long_form.add_argument("--reference-audio", default=None, help="a sound the soundtrack continues")
    long_form.add_argument("--duration", default=None, help="render at most this many seconds per video")
    long_form.add_argument("--max-seconds", default=None,
                           help=f"refuse a video that would render more seconds than this (default {MAX_SECONDS:g})")
    run = parser.add_argument_group("run")
    run.add_argument("--batch-size", default="4", help="videos rendered together (integer >= 1)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    run.add_argument("--envelope-head", default=None,
                     help="the decoder's latent envelope head for --sync-guidance (a folder recipes.train_envelope_head "
                          "wrote; default: the shipped one for the toy decoder)")
    run.add_argument("--dtype", default="fp32", metavar="{" + ",".join(DTYPES) + "}")
    run.add_argument("--skip-existing", action="store_true", help="keep outputs that already exist")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def _number(text: str | None):
    """The int or float ``text`` spells, else ``text`` itself (for the check to refuse, naming it)."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def check_run_options(args: argparse.Namespace) -> None:
    """The options that are not the pipeline's arguments but how it is loaded: --dtype, --device."""
    from mapper.generation.arguments import check_choice, check_device

    check_choice("--dtype", args.dtype, DTYPES)
    check_device(args.device, "--device")


def plan_call(args: argparse.Namespace, jobs: list[Job]):
    """The jobs as one ``VideoToAudioPipeline`` request (a ``CallPlan``), checked by the pipeline's own
    checks and, against AudioLDM-2's noise schedule and the mapper's clip window (read from configs: no
    model is built), by what the loaded pipeline checks again; ValueError of one line naming the option."""
    from mapper.decoders.audioldm2 import audioldm2_scheduler
    from mapper.generation.arguments import ArgumentError
    from mapper.generation.call_plan import check_against_models
    from mapper.generation.pipeline import VideoToAudioPipeline

    options = {keyword: getattr(args, option[2:].replace("-", "_")) for keyword, option in CALL_OPTIONS.items()}
    options.update({keyword: _number(options[keyword]) for keyword in NUMBERS if options[keyword] is not None})
    try:
        call = VideoToAudioPipeline.check_call([j.video for j in jobs], [j.label for j in jobs],
                                               start=[j.start for j in jobs], **options)  # fmt: skip
        window = check_model_args(args)
        check_against_models(call.sampling, call.long_form, audioldm2_scheduler(), window)
        check_sync_guidance_parts(args, call.sync_guidance)
    except ArgumentError as error:
        raise error.spelled(CALL_OPTIONS) from None
    return call


def check_model_args(args: argparse.Namespace) -> float:
    """--mapper, --extractors and --audioldm2 against what is on disk, reading configs only (no
    model is built); returns the seconds of the clip window the mapper sees (--overlap's bound)."""
    from extractors.presets import PRESETS
    from mapper.config import MapperConfig
    from mapper.decoders.audioldm2.loading import check_audioldm2_name
    from mapper.last_mapper import last_mapper

    if args.mapper is None:
        try:
            folder = last_mapper()
        except FileNotFoundError as error:
            raise ValueError(f"--mapper not given, and {error}") from None
    else:
        folder = Path(args.mapper)
    if (folder / "model_index.json").is_file():  # a saved pipeline carries its own extractors and AudioLDM-2
        for option, value in (("--extractors", args.extractors), ("--audioldm2", args.audioldm2)):
            if value is not None:
                raise ValueError(f"{option} cannot replace a part of the saved pipeline {folder}; leave it out")
        try:
            preset = json.loads((folder / "extractors" / "config.json").read_text())["preset"]
        except (OSError, ValueError, KeyError):
            raise ValueError(f"--mapper {folder}: a saved pipeline without a readable extractors/config.json") from None
    elif (folder / "config.json").is_file():
        try:
            preset = args.extractors or MapperConfig.from_pretrained(folder).extractor_preset
        except (OSError, ValueError) as error:
            raise ValueError(f"--mapper {folder}: unreadable config.json ({str(error).strip().splitlines()[0]})") from None
    else:
        raise ValueError(f"--mapper {folder}: not a saved mapper (no config.json)")
    if preset not in PRESETS:
        where = "--extractors" if args.extractors else f"--mapper {folder}: its extractor preset"
        raise ValueError(f"{where} must be one of {', '.join(sorted(PRESETS))}, got {preset!r}")
    if args.audioldm2 is not None:
        check_audioldm2_name("--audioldm2", args.audioldm2)
    if args.envelope_head is not None and not (Path(args.envelope_head) / "config.json").is_file() and (
            args.envelope_head != "toy"):
        raise ValueError(f"--envelope-head {args.envelope_head}: not a latent envelope head folder (no config.json)")
    return PRESETS[preset].clip.seconds


def check_sync_guidance_parts(args: argparse.Namespace, sync_guidance: float | None) -> None:
    """An explicit --sync-guidance > 0 against what it needs on disk, before any model loads: the mapper
    folder's envelope predictor and a latent head for the decoder (the shipped one only for `toy`)."""
    from mapper.config import MapperConfig
    from mapper.envelope_predictor import FOLDER
    from mapper.last_mapper import last_mapper

    if not sync_guidance:
        return
    folder = Path(args.mapper) if args.mapper is not None else last_mapper()
    if (folder / "model_index.json").is_file():
        folder = folder / "mapper"
    if not (folder / FOLDER / "config.json").is_file():
        raise ValueError(f"--sync-guidance {sync_guidance:g} needs the mapper's video envelope predictor; {folder} has "
                         f"no {FOLDER}/ (train the mapper with model.envelope_predictor: true)")
    decoder = args.audioldm2 or MapperConfig.from_pretrained(folder).audioldm2
    if args.envelope_head is None and decoder != "toy":
        raise ValueError(f"--sync-guidance {sync_guidance:g} needs a latent envelope head for the decoder {decoder!r}: "
                         "--envelope-head FOLDER (python -m recipes.train_envelope_head trains one)")


@dataclass(frozen=True)
class Job:
    """One video and where its outputs go."""

    video: Path
    label: str
    start: float
    wav: Path
    mp4: Path | None


def check_out(args: argparse.Namespace) -> bool:
    """Whether --out names a .wav file (else a folder); ValueError if it cannot be written as meant."""
    out = Path(args.out)
    folder_meant = args.out.endswith(("/", os.sep))  # "out.v2/": a folder, whatever its suffix
    wav = out.suffix.lower() == ".wav" and not folder_meant
    if wav and out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a new .wav name, or the folder without .wav")
    if not wav and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder or a .wav path")
    if not wav and out.suffix and not out.is_dir() and not folder_meant:
        raise ValueError(f"--out {out}: only a .wav file or a folder is allowed (end a folder's name with /)")
    parent = out.parent if wav else out
    while not parent.exists():  # the first folder that exists must let us create the rest
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {parent} is not writable")
    return wav


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """The videos of INPUT with their output paths (raises FileNotFoundError / ValueError)."""
    from extractors.manifest import VIDEO_SUFFIXES, list_clips

    source, out = Path(args.input), Path(args.out)
    if not source.exists():
        raise FileNotFoundError(f"INPUT {source}: no such file or folder")
    wav = check_out(args)
    single = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES  # unreadable: fails as an item
    csv = not single and (source.is_file() or (source / "metadata.csv").is_file())
    if args.video_dir is not None and not csv:
        raise ValueError(f"--video-dir only applies to a CSV input, and {source} is not one")
    if args.video_dir is not None and not Path(args.video_dir).is_dir():
        raise ValueError(f"--video-dir {args.video_dir}: no such folder")
    if single:
        items = [(source.stem, source, 0.0, "")]
    else:
        items = [(c.id, c.path, c.start, c.label) for c in list_clips(source, args.video_dir)]
    if wav:
        if len(items) != 1:
            raise ValueError(f"--out {out} is a .wav file but {source} holds {len(items)} videos; give a folder")
        wavs = [out]
    else:
        wavs = [out / f"{name}.wav" for name, *_ in items]
    jobs = []
    for (_, path, start, label), wav_path in zip(items, wavs):
        label = args.label if args.label is not None else label
        jobs.append(Job(path, label, start, wav_path, wav_path.with_suffix(".mp4") if args.mp4 else None))
    return jobs


def remove_stale_outputs(jobs: list[Job]) -> None:
    """Remove the temporaries a killed run left beside these outputs (those of a live run stay)."""
    from extractors.atomic import remove_stale_temporaries

    targets: dict[Path, set[str]] = {}
    for job in jobs:
        for path in (job.wav, job.mp4):
            if path is not None:
                targets.setdefault(path.parent, set()).add(path.name)
    for folder, names in targets.items():
        removed = remove_stale_temporaries(folder, names)
        if removed:
            print(f"removed {len(removed)} temporary file(s) a killed run left in {folder}")


class WavSink:
    """Streams one soundtrack into its wav, atomically: a temporary file beside it is renamed
    into place when the soundtrack is complete, and removed if it never is."""

    def __init__(self, path: Path, sample_rate: int):
        import soundfile as sf

        from extractors.atomic import temporary_path

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.samples = path, 0
        self._tmp = temporary_path(path)  # names this process: a rerun after a kill removes it
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
    from extractors.video import MediaReadError, check_media_limits
    from mapper.generation import AudioChunk, ClipDone, loading
    from mapper.generation.arguments import ArgumentError
    from mapper.generation.mux import mux_audio

    try:  # every option, before any model is loaded
        check_run_options(args)
        jobs = plan_jobs(args)
        call = plan_call(args, jobs)
    except (FileNotFoundError, ValueError) as error:
        return usage_error(error)
    remove_stale_outputs(jobs)
    requests = call.requests  # one per job
    if args.skip_existing:
        todo = [i for i, j in enumerate(jobs) if not (j.wav.is_file() and (j.mp4 is None or j.mp4.is_file()))]
        jobs, requests = [jobs[i] for i in todo], [requests[i] for i in todo]
    if not jobs:
        print("nothing to do: every output exists")
        return 0
    if len(jobs) == 1:  # fail fast, before loading any model, on the one video there is
        try:
            check_media_limits(jobs[0].video, call.long_form.max_seconds, start=requests[0].start,
                               duration=requests[0].duration)  # fmt: skip
        except MediaReadError as error:
            print(f"error: {error}", file=sys.stderr)
            return ITEMS_FAILED
    try:
        pipeline = loading.load_pipeline(mapper=args.mapper, audioldm2=args.audioldm2, extractors=args.extractors,
                                         device=args.device, dtype=args.dtype, progress=not args.no_progress,
                                         envelope_head=args.envelope_head)  # fmt: skip
        try:  # the loaded models' own bounds, checked first
            events = pipeline.stream(requests, call.sampling, call.long_form, call.seed, batch_size=call.batch_size,
                                     sync_guidance=call.sync_guidance)
        except ArgumentError as error:
            raise error.spelled(CALL_OPTIONS) from None
    except (FileNotFoundError, ValueError, OSError) as error:
        return usage_error(error)
    pipeline.set_progress_bar_config(disable=args.no_progress, leave=False)  # step bars vanish when done
    sinks: dict[int, WavSink] = {}
    failed: list[str] = []
    try:
        for event in events:
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


def console() -> None:
    """The `mfm-generate` command."""
    sys.exit(main())


if __name__ == "__main__":
    console()
