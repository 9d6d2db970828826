"""`python -m recipes.train_envelope_head --decoder toy --out FOLDER [--corpus toy|FOLDER] [--steps N]
[--batch N] [--clips N] [--seed N] [--lr X] [--threads N]`: train a latent envelope head for a frozen
AudioLDM-2 (the head that sync guidance differentiates, ``mapper.decoders.audioldm2.envelope_head``)
and write it as a folder: config.json, model.safetensors, provenance.json.

The decoder is only read: its VAE encodes the corpus's log-mels into the latents its UNet samples
(at the VAE's recorded scaling factor), its vocoder's hop and VAE's time factor give the latent frame
(``LatentGeometry.frame_samples``: AudioLDM-2, 640 samples), its scheduler the noise levels. The
target of every clip is ``extractors.envelope.audio_envelope`` of its audio at that frame.

``--decoder``: ``toy`` (the shipped toy AudioLDM-2), ``tiny`` (random; for tests) or a diffusers
AudioLDM-2 folder (e.g. a local copy of ``cvssp/audioldm2``: only its vae, vocoder, unet config and
scheduler are read). ``--corpus``: ``toy`` (the toy decoder's own pretraining world: ``--clips``
clips of toy world ``--seed``, its test split held out) or a folder of audio files (wav, flac, ogg,
mp3; each file's first 10.24 s, zero-padded; every tenth file in name order held out; ``--clips``
files at most). The held-out clips' MSE and correlation per noise band are printed and recorded.
``--out`` is written atomically (a temporary sibling swapped in).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from recipes.cli import OneLineArgumentParser, check_folder_option, float_in_range, int_in_range, usage_error

LATENT_FRAMES = 256  # AudioLDM-2's native window: 10.24 s
TOY_CORPUS_SEED = 1  # the toy decoder's own world (the mapper's is seed 0): the head sees what the decoder saw
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
HELD_OUT_EVERY = 10  # a folder corpus: every tenth file, in name order, is held out
PROVENANCE = "provenance.json"


def parse_args(argv):
    parser = OneLineArgumentParser(prog="python -m recipes.train_envelope_head", description=__doc__.split("\n\n")[0])
    parser.add_argument("--decoder", required=True, help="'toy', 'tiny' or a diffusers AudioLDM-2 folder")
    parser.add_argument("--out", type=Path, required=True, help="the head folder to write (replaced)")
    parser.add_argument("--corpus", default="toy", help="'toy' (the toy decoder's world) or a folder of audio files")
    parser.add_argument("--clips", type=int_in_range(4, 100_000), default=600,
                        help="toy corpus: clips in the world; folder: files read at most")
    parser.add_argument("--seed", type=int_in_range(0), default=TOY_CORPUS_SEED,
                        help="seed of the toy corpus's world and of training")
    parser.add_argument("--steps", type=int_in_range(1), default=1500)
    parser.add_argument("--batch", type=int_in_range(1, 1024), default=16, help="clips per step")
    parser.add_argument("--lr", type=float_in_range(0.0, above=True), default=2e-3)
    parser.add_argument("--threads", type=int_in_range(1, 256), default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.decoder not in ("toy", "tiny") and not (Path(args.decoder) / "model_index.json").is_file():
        parser.error(f"--decoder {args.decoder}: not 'toy', 'tiny' or a diffusers AudioLDM-2 folder "
                     "(no model_index.json)")
    if args.corpus != "toy":
        folder = Path(args.corpus)
        if not folder.is_dir():
            parser.error(f"--corpus {args.corpus}: not 'toy' and not a folder")
        if len(audio_files(folder)) < 2:
            parser.error(f"--corpus {args.corpus}: fewer than 2 audio files ({', '.join(AUDIO_SUFFIXES)})")
    return args


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_folder_option("--out", args.out)
    except ValueError as error:
        return usage_error(error)
    import torch

    from mapper.decoders.audioldm2.envelope_head import EnvelopeHeadConfig, build_envelope_head
    from mapper.decoders.audioldm2.pretraining.envelope_head import held_out_scores, train_envelope_head
    from mapper.decoders.audioldm2.pretraining.vae import encode_latents

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started, timings = time.perf_counter(), {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)

    vae, vocoder_config, scheduler, geometry = load_decoder_parts(args.decoder)
    waveforms, held_out = corpus_waveforms(args, vocoder_config, geometry)  # (N, 256 * frame_samples), (N,) bool
    latents, envelopes = prepare(waveforms, vae, vocoder_config, geometry, encode_latents)  # (N, C, T, F), (N, T)
    train, test = ~held_out, held_out
    if not train.any() or not test.any():
        return usage_error(f"--clips {args.clips}: {int(train.sum())} training and {int(test.sum())} held-out clips; "
                           "give more clips (both are needed)")
    print(f"corpus: {len(waveforms)} clips ({int(train.sum())} for training, {int(test.sum())} held out), "
          f"latents {tuple(latents.shape[1:])}, frames of {geometry.frame_samples} samples")
    lap("corpus")
    config = EnvelopeHeadConfig(latent_channels=latents.shape[1], latent_bins=latents.shape[3],
                                frame_samples=geometry.frame_samples)
    head = build_envelope_head(config, seed=args.seed)
    train_envelope_head(head, latents[train], envelopes[train], scheduler, args.steps, args.batch, args.lr, generator)
    lap("training")
    scores = held_out_scores(head, latents[test], envelopes[test], scheduler, torch.Generator().manual_seed(args.seed))
    for band, score in scores.items():
        print(f"held out, {band}: mse {score['mse']:.3f}, correlation {score['correlation']:.3f}")
    lap("evaluation")
    record = {
        "command": "python -m recipes.train_envelope_head " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "decoder": args.decoder, "corpus": args.corpus, "seed": args.seed, "steps": args.steps,
        "batch": args.batch, "lr": args.lr, "train_clips": int(train.sum()), "held_out_clips": int(test.sum()),
        "held_out": scores, "seconds": timings, "torch": torch.__version__, "threads": args.threads,
    }
    vae_file = _vae_weights(args.decoder)
    if vae_file is not None:  # the head reads this VAE's latents: a retrained VAE needs a retrained head
        from extractors.file_hash import file_sha256

        record["vae_sha256"] = file_sha256(vae_file)
    save_head(head, args.out, record)
    print(f"envelope head written to {args.out} ({sum(timings.values()):.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    return 0


def load_decoder_parts(decoder: str):
    """(vae, vocoder config, scheduler, LatentGeometry) of a decoder; a folder's UNet and text models are not
    loaded (only the UNet's config, for the geometry)."""
    from types import SimpleNamespace

    from diffusers import AudioLDM2UNet2DConditionModel, AutoencoderKL, DDIMScheduler
    from transformers import SpeechT5HifiGanConfig

    from mapper.decoders.audioldm2 import LatentGeometry, build_tiny_audioldm2
    from mapper.decoders.audioldm2.toy import TOY_FOLDER

    if decoder == "tiny":
        pipe = build_tiny_audioldm2()
        return pipe.vae, pipe.vocoder.config, pipe.scheduler, LatentGeometry.of(pipe.vae, pipe.vocoder, pipe.unet)
    folder = str(TOY_FOLDER if decoder == "toy" else Path(decoder))
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").eval().requires_grad_(False)
    vocoder_config = SpeechT5HifiGanConfig.from_pretrained(folder, subfolder="vocoder")
    scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")  # only its noise schedule is used
    unet_config = AudioLDM2UNet2DConditionModel.load_config(folder, subfolder="unet")
    geometry = LatentGeometry.of(vae, SimpleNamespace(config=vocoder_config),
                                 SimpleNamespace(config=SimpleNamespace(**unet_config)))  # configs are all it reads
    return vae, vocoder_config, scheduler, geometry


def _vae_weights(decoder: str) -> Path | None:
    """The decoder's VAE weights file (None for the random tiny build)."""
    if decoder == "tiny":
        return None
    from mapper.decoders.audioldm2.toy import TOY_FOLDER

    found = sorted((TOY_FOLDER if decoder == "toy" else Path(decoder)).glob("vae/*.safetensors"))
    return found[0] if found else None


def corpus_waveforms(args, vocoder_config, geometry):
    """(N, LATENT_FRAMES * frame_samples) waveforms normalised as AudioLDM-2 prepares audio for its VAE, and
    which are held out (N,) bool."""
    import numpy as np
    import torch

    from mapper.decoders.audioldm2.mel import MelConfig
    from mapper.decoders.audioldm2.reference import normalize_reference

    samples = LATENT_FRAMES * geometry.frame_samples
    if args.corpus == "toy":
        from mapper.decoders.audioldm2.pretraining.corpus import build_corpus

        mel_frames = samples // MelConfig.for_vocoder(vocoder_config).hop_length
        corpus = build_corpus(args.clips, args.seed, MelConfig.for_vocoder(vocoder_config), mel_frames)
        return corpus.waveforms, torch.tensor([split == "test" for split in corpus.splits])
    from extractors.video import read_audio_file

    files = audio_files(Path(args.corpus))[:args.clips]
    waveforms = np.zeros((len(files), samples), np.float32)
    for i, path in enumerate(files):
        audio = read_audio_file(path, geometry.sample_rate)[:samples]
        waveforms[i, :len(audio)] = normalize_reference(audio)
    held_out = torch.tensor([i % HELD_OUT_EVERY == 0 for i in range(len(files))])
    return torch.from_numpy(waveforms), held_out


def prepare(waveforms, vae, vocoder_config, geometry, encode_latents, batch: int = 16):
    """Waveforms (N, S) -> latents (N, C, T, F) at the VAE's recorded scale and envelopes (N, T), T = S / frame."""
    import torch

    from extractors.envelope import audio_envelope
    from mapper.decoders.audioldm2.mel import MelConfig, log_mel

    mel_config = MelConfig.for_vocoder(vocoder_config)
    mel_frames = waveforms.shape[1] // mel_config.hop_length
    with torch.no_grad():
        mels = torch.cat([log_mel(waveforms[i:i + batch], mel_config)[:, :mel_frames]
                          for i in range(0, len(waveforms), batch)])  # (N, mel frames, mels)
        latents = encode_latents(vae, mels, batch)
    envelopes = torch.cat([audio_envelope(waveforms[i:i + batch], geometry.frame_samples, latents.shape[2])
                           for i in range(0, len(waveforms), batch)])  # (N, T)
    return latents, envelopes


def save_head(head, out: Path, record: dict) -> None:
    """config.json + model.safetensors + provenance.json (with the weights' sha256) into a temporary sibling,
    then swapped in: ``out`` is never half written."""
    from extractors.atomic import atomic_folder
    from extractors.file_hash import file_sha256
    from mapper.decoders.audioldm2.envelope_head import WEIGHTS_FILE

    with atomic_folder(out) as staging:
        head.save_pretrained(staging)
        record = {**record, "sha256": {WEIGHTS_FILE: file_sha256(staging / WEIGHTS_FILE)}}
        (staging / PROVENANCE).write_text(json.dumps(record, indent=1) + "\n")
        for path in staging.iterdir():
            path.chmod(0o644)  # safetensors writes its file private


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
