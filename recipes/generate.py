"""`python -m recipes.generate VIDEO --label TEXT --out out.wav [--mapper DIR] [--steps N]`

Writes a 16 kHz wav soundtrack for VIDEO (any length) with soundfile. Without --mapper it uses
the mapper of the last `train_mapper` run. A bad video gives a one-line error naming it.
"""
from __future__ import annotations

import argparse
import sys

from extractors.video import VideoReadError
from mapper.audio_io import write_wav


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recipes.generate", description=__doc__.split("\n")[2])
    parser.add_argument("video", help="input video file")
    parser.add_argument("--label", default=None, help='sound label used as the text prompt, e.g. "dog barking"')
    parser.add_argument("--out", required=True, help="output .wav path")
    parser.add_argument("--mapper", default=None, help="saved mapper folder (default: last trained)")
    parser.add_argument("--audioldm2", default=None, help="override the AudioLDM-2 (local folder or hub id)")
    parser.add_argument("--steps", type=int, default=100, help="sampling steps (paper: DDIM 100)")
    parser.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance (paper: 3.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mapper.pipeline import load_pipeline

    try:
        pipeline = load_pipeline(mapper=args.mapper, audioldm2=args.audioldm2, device=args.device)
        result = pipeline(args.video, args.label, num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed)
    except (VideoReadError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_wav(args.out, result.audio, result.sample_rate)
    print(f"wrote {args.out}: {len(result.audio) / result.sample_rate:.2f} s at {result.sample_rate} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
