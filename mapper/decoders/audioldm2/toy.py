"""The `toy` AudioLDM-2: the tiny build's components at a larger size, pretrained on toy-world audio.

``recipes.pretrain_toy_decoder`` trains it (VAE, vocoder, then the UNet on tiny-AudioMAE tokens of the
same audio and the label) and writes it in diffusers' layout to :data:`TOY_FOLDER`, shipped with the
package with ``provenance.json`` (the command, seed and checksums that made it).
``load_audioldm2("toy")`` reads it offline.
"""
from __future__ import annotations

import json
from pathlib import Path

from extractors.file_hash import file_sha256
from mapper.decoders.audioldm2.tiny import DecoderSize

TOY_FOLDER = Path(__file__).parent / "toy_weights"
PROVENANCE = "provenance.json"
TOY = DecoderSize(
    # Five levels, down to 16 x 1 latent positions: cross-attention carries no position, so the UNet must
    # know where in the 10 s a latent position is to pick the AudioMAE token of that time, and a conv
    # stack learns absolute position from its zero padding only where its receptive field spans the
    # whole window. (Four levels, 32 x 2 at the bottom, learned no timing from the tokens.)
    unet_channels=(16, 32, 32, 48, 64),
    unet_attention_levels=2,  # attention (self + both streams) at 1/8 and 1/16 time resolution: CPU cost
    vae_channels=(16, 32, 64),
    vocoder_channels=64,
    vocoder_kernels=(3, 7),
)
TOY_WORLD_SEED = 1  # the decoder's own toy world: the mapper's (seed 0) clips are all unseen by it


def weight_files(folder: Path = TOY_FOLDER) -> list[Path]:
    """The folder's safetensors files, in a fixed order (what the checksums cover)."""
    return sorted(folder.rglob("*.safetensors"))


def checksums(folder: Path = TOY_FOLDER) -> dict[str, str]:
    """{relative path: sha256} of every weight file in `folder`."""
    return {str(path.relative_to(folder)): file_sha256(path) for path in weight_files(folder)}


def read_provenance(folder: Path = TOY_FOLDER) -> dict:
    path = folder / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the toy AudioLDM-2 is not installed "
                                "(python -m recipes.pretrain_toy_decoder makes it)")
    return json.loads(path.read_text())
