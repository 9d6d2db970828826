"""`python -m recipes.pretrain_toy_decoder [--out FOLDER] [--seed 1] [--clips N] [--*-steps N]
[--base FOLDER --stages audiomae,vae,vocoder,unet]`: pretrain the `toy` AudioLDM-2 on toy-world audio
(VAE, vocoder, then the UNet; see ``mapper.decoders.audioldm2.pretraining``) and write it in diffusers'
layout with ``provenance.json``.

The ``audiomae`` stage first calibrates the `toy` extractor preset's AudioMAE output norm on the same
corpus (``extractors/audiomae_calibration.py``; written to the package's ``extractors/toy_weights``):
the UNet is trained on, and the toy recipe's mapper predicts, the tokens of that calibrated AudioMAE.

The default ``--out`` is the folder shipped with the package (``load_audioldm2("toy")`` reads it).
``--base`` starts from a decoder already made (``toy`` or a folder) and retrains only ``--stages``; the
stages are independent given the VAE (the vocoder learns true mels, the UNet the VAE's latents), and
``provenance.json`` keeps the base's record under ``"base"``.
Deterministic for a seed and thread count on one machine: every random draw comes from seeded generators.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

# torch and the decoder are imported once the command line is accepted: --help and a wrong option answer at once
from recipes.cli import OneLineArgumentParser, check_folder_option, float_in_range, int_in_range, usage_error

LATENT_FRAMES = 256  # AudioLDM-2's native window: 10.24 s
STAGES = ("audiomae", "vae", "vocoder", "unet")
TOKENS_PRESET = "toy"  # the extractor preset whose AudioMAE tokens form the GPT-2 stream


def stage_list(text: str) -> tuple[str, ...]:
    stages = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(f"{text!r}: give some of {','.join(STAGES)}")
    return stages


def parse_args(argv):
    parser = OneLineArgumentParser(prog="python -m recipes.pretrain_toy_decoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="the diffusers folder to write (replaced; default: the shipped toy decoder's folder)")
    parser.add_argument("--seed", type=int_in_range(0), default=None,
                        help="seed of the decoder's toy world and of training (default: the toy decoder's own, "
                             "TOY_WORLD_SEED; the mapper's world is seed 0)")
    parser.add_argument("--clips", type=int_in_range(8, 20_000), default=600, help="clips in the decoder's world")
    parser.add_argument("--vae-steps", type=int_in_range(1), default=600)
    parser.add_argument("--vocoder-steps", type=int_in_range(1), default=3000)
    parser.add_argument("--unet-steps", type=int_in_range(1), default=4000)
    parser.add_argument("--batch", type=int_in_range(1, 256), default=8, help="clips per UNet step")
    parser.add_argument("--label-with-tokens", type=float_in_range(0.0, 1.0), default=None,
                        help="of the UNet's rows with tokens, the fraction that also see the label (default: "
                             "LABEL_WITH_TOKENS of mapper.decoders.audioldm2.pretraining.unet)")
    parser.add_argument("--threads", type=int_in_range(1, 256), default=2, help="torch CPU threads")
    parser.add_argument("--base", default=None, help="start from this decoder ('toy' or a diffusers folder) "
                        "instead of a fresh build; needs --stages")
    parser.add_argument("--stages", type=stage_list, default=STAGES, help="stages to train (default: all)")
    parser.add_argument("--audiomae-out", type=Path, default=None,
                        help="the AudioMAE norm calibration the audiomae stage writes and the UNet's tokens use "
                             "(default: the `toy` extractor preset's shipped file)")
    args = parser.parse_args(argv)
    if args.stages != STAGES and args.base is None:
        parser.error("--stages: training only some stages needs --base (the decoder whose other stages are kept)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from mapper.decoders.audioldm2.toy import PROVENANCE, TOY_FOLDER, TOY_WORLD_SEED

    args.out = TOY_FOLDER if args.out is None else args.out
    args.seed = TOY_WORLD_SEED if args.seed is None else args.seed
    try:
        check_folder_option("--out", args.out)
        if args.base is not None and args.base != "toy" and not (Path(args.base) / PROVENANCE).is_file():
            raise ValueError(f"--base {args.base}: not a toy decoder folder (no {PROVENANCE})")
    except ValueError as error:
        return usage_error(error)
    from mapper.decoders.audioldm2 import build_tiny_audioldm2, load_audioldm2
    from mapper.decoders.audioldm2.mel import MelConfig
    from mapper.decoders.audioldm2.pretraining.corpus import build_corpus
    from mapper.decoders.audioldm2.pretraining.unet import train_unet
    from mapper.decoders.audioldm2.pretraining.vae import encode_latents, scaled_latents, train_vae
    from mapper.decoders.audioldm2.pretraining.vocoder import train_vocoder
    from mapper.decoders.audioldm2.tiny import freeze
    from mapper.decoders.audioldm2.toy import TOY, read_provenance

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started, timings = time.perf_counter(), {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)

    if args.base is None:
        pipe, base = build_tiny_audioldm2(seed=args.seed, size=TOY), None
    else:
        base_folder = TOY_FOLDER if args.base == "toy" else Path(args.base)
        pipe, base = load_audioldm2(str(base_folder)), read_provenance(base_folder)
    mel_config = MelConfig.for_vocoder(pipe.vocoder.config)
    tokens_preset = _tokens_preset(args.audiomae_out)
    if "audiomae" in args.stages:
        calibrate_audiomae(tokens_preset, args, mel_config)
        lap("audiomae")
    corpus = build_corpus(args.clips, args.seed, mel_config, LATENT_FRAMES * 4, preset=tokens_preset)
    train = [i for i, split in enumerate(corpus.splits) if split != "test"]  # test clips: held out
    print(f"corpus: {len(corpus.ids)} clips of toy world seed {args.seed} ({len(train)} for training)")
    lap("corpus")
    mels, waves = corpus.mels[train], corpus.waveforms[train]
    if "vae" in args.stages:
        train_vae(pipe.vae, mels, args.vae_steps, batch=16, crop_frames=128, lr=1e-3, generator=generator)
        latents = scaled_latents(pipe.vae, mels)  # (N, 8, 256, 16): encoded once, for the scale and the UNet
        print(f"vae: latent scaling factor {pipe.vae.config.scaling_factor:.4f}")
        lap("vae")
    elif "unet" in args.stages:
        latents = encode_latents(pipe.vae, mels)  # the base VAE's, at its own scale
    if "vocoder" in args.stages:
        train_vocoder(pipe.vocoder, mels, waves, args.vocoder_steps, batch=16, crop_frames=48, lr=1e-3,
                      generator=generator)
        lap("vocoder")
    if "unet" in args.stages:
        labels = [corpus.labels[i] for i in train]
        mix = {} if args.label_with_tokens is None else {"label_with_tokens": args.label_with_tokens}
        train_unet(pipe, latents, corpus.tokens[train], labels, args.unet_steps, args.batch, lr=1e-3,
                   generator=generator, **mix)
        lap("unet")
    freeze(pipe)
    _save(pipe, args, timings, len(train), base)
    print(f"toy AudioLDM-2 written to {args.out} ({sum(timings.values()):.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    return 0


def _tokens_preset(audiomae_out: Path | None):
    """The `toy` extractor preset, reading its AudioMAE norm from `audiomae_out` when given."""
    from extractors.presets import get_preset

    toy = get_preset(TOKENS_PRESET)
    return toy if audiomae_out is None else replace(toy, audiomae_norm=str(audiomae_out.resolve()))


def calibrate_audiomae(preset, args, mel_config) -> None:
    """Write `preset`'s AudioMAE norm calibration: the norm that standardises the tokens of the corpus's
    training clips (computed with the norm as built)."""
    from extractors.audiomae_calibration import calibrated_norm, calibration_path, save_calibration
    from extractors.frozen import FrozenExtractors
    from mapper.decoders.audioldm2.pretraining.corpus import build_corpus

    uncalibrated = replace(preset, audiomae_norm=None)
    corpus = build_corpus(args.clips, args.seed, mel_config, LATENT_FRAMES * 4, preset=uncalibrated)
    train = [i for i, split in enumerate(corpus.splits) if split != "test"]
    norm = FrozenExtractors(uncalibrated).audiomae.vit.norm
    path = calibration_path(preset.audiomae_norm)
    save_calibration(calibrated_norm(norm, corpus.tokens[train]), path)
    print(f"audiomae: norm calibrated on {len(train)} clips -> {path}")


def _save(pipe, args, timings: dict, train_clips: int, base: dict | None) -> None:
    """save_pretrained into a temporary sibling folder, then swap it in: `--out` is never half written."""
    import torch

    from extractors.atomic import atomic_folder
    from mapper.decoders.audioldm2.toy import PROVENANCE, checksums

    with atomic_folder(args.out) as staging:
        pipe.save_pretrained(staging, safe_serialization=True)
        _drop_load_paths(staging)
        provenance = {
            "command": "python -m recipes.pretrain_toy_decoder " + " ".join(
                f"--{k.replace('_', '-')} {','.join(v) if isinstance(v, tuple) else v}"
                for k, v in vars(args).items() if k != "out" and v is not None),
            "seed": args.seed, "clips": args.clips, "train_clips": train_clips,
            "steps": {stage: getattr(args, f"{stage}_steps") for stage in args.stages if stage != "audiomae"},
            "seconds": timings, "torch": torch.__version__, "threads": args.threads,
            "sha256": checksums(staging),
        }
        if base is not None:
            provenance["base"] = {key: value for key, value in base.items() if key != "sha256"}
        (staging / PROVENANCE).write_text(json.dumps(provenance, indent=1) + "\n")


def _drop_load_paths(folder: Path) -> None:
    """diffusers records where a --base component was loaded from (`_name_or_path`): a path of this machine."""
    for path in folder.rglob("*.json"):
        config = json.loads(path.read_text())
        if isinstance(config, dict) and config.pop("_name_or_path", None) is not None:
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
