"""``load_pipeline``: assemble the parts a trained mapper was made for, offline unless a hub id is named.

A mapper's config names the extractor preset that produced its inputs and the AudioLDM-2 its outputs
condition; a saved ``VideoToAudioPipeline`` folder carries all of them.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from extractors.encoders import StreamSpec
from extractors.presets import get_preset
from mapper.decoders.audioldm2 import load_audioldm2, load_envelope_head
from mapper.decoders.audioldm2.loading import check_component_configs
from mapper.generation.extractors_component import VisualExtractors
from mapper.generation.pipeline import HEAD_FOLDER, VideoToAudioPipeline
from mapper.envelope_predictor import FOLDER as PREDICTOR_FOLDER
from mapper.envelope_predictor import load_envelope_predictor
from mapper.generation_defaults import read_generation_defaults
from mapper.last_mapper import last_mapper
from mapper.loading import check_weights_match_folder, load_mapper


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype, or one of "fp32" / "float32" / "fp16" / "float16" / "bf16" / "bfloat16"."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}  # fmt: skip
    if dtype not in names:
        raise ValueError(f"dtype must be one of {', '.join(names)}, got {dtype!r}")
    return names[dtype]


def load_pipeline(
    mapper: str | os.PathLike | None = None,
    audioldm2: str | None = None,
    extractors: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    progress: bool = False,
    envelope_head: str | os.PathLike | None = None,
) -> VideoToAudioPipeline:
    """Assemble a pipeline, offline unless a hub id is named.

    ``mapper``: a mapper's ``save_pretrained`` folder (default: the last one trained) or a saved
    ``VideoToAudioPipeline`` folder. ``audioldm2`` / ``extractors``: override what the mapper's
    config names ("tiny", a local diffusers folder, or a hub id such as cvssp/audioldm2).
    ``dtype`` (torch dtype or "fp16" / "bf16" / "fp32") applies to the mapper and AudioLDM-2 —
    half precision is meant for GPUs; the frozen extractors stay in float32. ``progress``: show
    progress bars over clips and sampling steps. ``envelope_head``: the decoder's latent envelope head
    for timing control ("toy" or a folder ``recipes.train_envelope_head`` wrote; default: the shipped one
    when the decoder is the `toy` AudioLDM-2, else none). The mapper folder's ``envelope_predictor/`` and
    ``generation_config.json`` are loaded with it (see ``VideoToAudioPipeline``'s timing control).
    """
    dtype = parse_dtype(dtype)
    mapper_dir = Path(mapper) if mapper is not None else last_mapper()
    if (mapper_dir / "model_index.json").is_file():
        check_model_index(mapper_dir / "model_index.json")
        check_weights_match_folder(mapper_dir / "mapper")  # sizes bounded and matching its weights' header
        check_component_configs(mapper_dir)  # the decoder's configs, before diffusers builds from them
        pipe = VideoToAudioPipeline.from_pretrained(mapper_dir, local_files_only=True, use_safetensors=True)
        pipe.to(device)
        for name in ("mapper", "vae", "text_encoder_2", "unet", "vocoder", *VideoToAudioPipeline._optional_components):
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module) and module.dtype != dtype:
                module.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=not progress)
        if envelope_head is None and (mapper_dir / HEAD_FOLDER).is_dir():  # the head it was saved with
            envelope_head = mapper_dir / HEAD_FOLDER
        return attach_timing_control(pipe, mapper_dir / "mapper", envelope_head, None, device)
    model = load_mapper(mapper_dir).to(device=device, dtype=dtype)
    preset = matching_preset(model.config, extractors, mapper_dir)
    frozen = VisualExtractors.from_preset(preset).to(device)
    # The network only for a hub id the caller named; the config's own is read from the local cache.
    decoder = load_audioldm2(audioldm2 or model.config.audioldm2, device=device, dtype=dtype, download=audioldm2 is not None)
    pipe = VideoToAudioPipeline.from_parts(frozen, model, decoder)
    pipe.set_progress_bar_config(disable=not progress)
    return attach_timing_control(pipe, mapper_dir, envelope_head, audioldm2 or model.config.audioldm2, device)


def attach_timing_control(pipe: VideoToAudioPipeline, mapper_dir: Path, envelope_head, decoder: str | None,
                          device) -> VideoToAudioPipeline:
    """Set the pipeline's envelope predictor and generation defaults from the mapper's folder (if it has
    them) and the decoder's latent envelope head (``envelope_head``, or the shipped one for the `toy` decoder);
    both stay in float32 on ``device`` (small, and guidance differentiates the head)."""
    if (mapper_dir / PREDICTOR_FOLDER).is_dir():
        pipe.envelope_predictor = load_envelope_predictor(mapper_dir / PREDICTOR_FOLDER).to(device)
    pipe.generation_defaults = read_generation_defaults(mapper_dir)
    if envelope_head is None and decoder == "toy":
        envelope_head = "toy"
    if envelope_head is not None:
        pipe.envelope_head = load_envelope_head(envelope_head).to(device)
    return pipe


# Where a saved pipeline's components may come from: diffusers imports whatever model_index.json
# names, so a crafted folder could otherwise make it import and call any installed module.
COMPONENT_LIBRARIES = ("diffusers", "transformers", "audioldm2", "mapper.model", "mapper.diffusion_mapper",
                       "mapper.generation.extractors_component")


def check_model_index(path: Path) -> None:
    index = json.loads(path.read_text())
    if index.get("_class_name") != VideoToAudioPipeline.__name__:
        raise ValueError(f"{path}: a {index.get('_class_name')!r} folder, not a saved {VideoToAudioPipeline.__name__}")
    for name, entry in index.items():
        if name.startswith("_") or entry in (None, [None, None]):
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in COMPONENT_LIBRARIES):
            raise ValueError(f"{path}: component {name!r} comes from {entry!r}; allowed libraries: "
                             f"{', '.join(COMPONENT_LIBRARIES)}")


def matching_preset(config, extractors: str | None, mapper_dir: Path):
    """The extractor preset for a mapper: the one its config names, or ``extractors`` if it gives
    the features the mapper was trained on (the same streams and shapes; an override with other
    weights only warns, since that can be deliberate)."""
    preset = get_preset(extractors or config.extractor_preset)
    if preset.fingerprint() == config.extractor_fingerprint:
        return preset
    if extractors is None:
        raise ValueError(
            f"{mapper_dir}: trained on features of a different '{preset.name}' preset config "
            f"(fingerprint {config.extractor_fingerprint} vs {preset.fingerprint()})"
        )
    dims = preset.dims
    streams = {name: spec.to_dict() for name, spec in dims.streams.items()}
    recorded = {name: StreamSpec.from_dict(spec).to_dict() for name, spec in config.streams.items()}
    if streams != recorded or dims.num_frames != config.num_frames:
        raise ValueError(
            f"extractors={extractors!r} gives other features than {mapper_dir} was trained on "
            f"('{config.extractor_preset}': streams {sorted(recorded)}, {config.num_frames} frames)"
        )
    warnings.warn(f"extractors={extractors!r} differs from the preset '{config.extractor_preset}' {mapper_dir} "
                  "was trained on (same shapes, other configuration or weights)", stacklevel=3)
    return preset
