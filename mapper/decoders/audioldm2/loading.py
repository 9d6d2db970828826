"""Loading AudioLDM-2: "tiny" (random, offline), "toy" (pretrained on the toy world, shipped), a
local diffusers folder (offline), or a hub id.

Only a hub id may reach the network. Whatever is loaded, the caller must not use the pipeline's own
prompt path (see :mod:`mapper.decoders.audioldm2`); :mod:`~mapper.decoders.audioldm2.conditions`
computes every condition itself.

A local folder is untrusted: diffusers and transformers build each component from its config.json
before they read a weight, so :func:`check_component_configs` reads those configs first (each at most
``MAX_CONFIG_BYTES``, valid JSON), bounds the scheduler's ``num_train_timesteps`` (arrays of that length)
and refuses a layer count (``layers_per_block``, ``num_hidden_layers``, ``n_layer``, ``depths``, ...)
larger than the number of tensors in the component's safetensors headers: a model of N layers holds
at least N tensors, so a count beyond that can only build modules its weights do not have.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from diffusers import AudioLDM2Pipeline, AutoencoderKL
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import (ClapFeatureExtractor, ClapModel, GPT2Model, RobertaTokenizer, RobertaTokenizerFast,
                          SpeechT5HifiGan, T5EncoderModel, T5Tokenizer, T5TokenizerFast, VitsModel, VitsTokenizer)

from extractors.checkpoint import read_config_json, read_header_shapes
from mapper.decoders.audioldm2.tiny import build_tiny_audioldm2, freeze
from mapper.decoders.audioldm2.toy import TOY_FOLDER

BUILT_IN = ("tiny", "toy")
MAX_CONFIG_BYTES = 1 << 20  # AudioLDM-2's largest component config (CLAP's) is about 10 KiB
MAX_HEADER_BYTES = 64 << 20  # safetensors' own limit is 100 MB; cvssp/audioldm2's largest header is ~0.2 MiB
MAX_TRAIN_TIMESTEPS = 100_000  # a scheduler's noise levels (AudioLDM-2: 1000); the mapper's bound too
LAYER_COUNT = re.compile(r"(layers?|layers_per_block|depths?)$")  # n_layer, num_hidden_layers, layers_per_block, ...


def check_component_configs(folder: str | os.PathLike) -> None:
    """Refuse, in one line naming the file, the field, the value and what is allowed, a diffusers folder
    whose component configs would have diffusers build something its weights cannot be: see the module
    docstring. Reads the configs and the safetensors headers only (milliseconds)."""
    folder = Path(folder)
    read_config_json(folder / "model_index.json", MAX_CONFIG_BYTES)
    for component in sorted(p for p in folder.iterdir() if p.is_dir()):
        scheduler = component / "scheduler_config.json"
        if scheduler.is_file():
            steps = read_config_json(scheduler, MAX_CONFIG_BYTES).get("num_train_timesteps")
            if steps is not None and not (_is_int(steps) and 1 <= steps <= MAX_TRAIN_TIMESTEPS):
                raise ValueError(f"{scheduler}: num_train_timesteps must be an integer >= 1 and <= "
                                 f"{MAX_TRAIN_TIMESTEPS}, got {_shown(steps)}")
        for config_file in sorted(component.glob("*config.json")):
            config = read_config_json(config_file, MAX_CONFIG_BYTES)
            weights = sorted(component.glob("*.safetensors"))
            if config_file.name == "config.json" and weights:
                tensors = sum(len(read_header_shapes(file, MAX_HEADER_BYTES)) for file in weights)
                _check_layer_counts(config, config_file, component.name, tensors)


def _check_layer_counts(config, config_file: Path, component: str, tensors: int, where: str = "") -> None:
    for key, value in config.items() if isinstance(config, dict) else ():
        field = f"{where}{key}"
        if isinstance(value, dict):
            _check_layer_counts(value, config_file, component, tensors, f"{field}.")
        elif LAYER_COUNT.search(key) and value is not None:
            counts = value if isinstance(value, list) else [value]
            if not all(_is_int(count) and count <= tensors for count in _flat(counts)):
                raise ValueError(f"{config_file}: {field} must be layer counts of at most {tensors} (the tensors in "
                                 f"{component}'s weights), got {_shown(value)}")


def _flat(values):
    for value in values:
        yield from (_flat(value) if isinstance(value, list) else [value])


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _AudioLDM2Folder(AudioLDM2Pipeline):
    """``AudioLDM2Pipeline`` with its GPT-2 stream annotated as the class AudioLDM-2 folders hold.

    ``AudioLDM2Pipeline.__init__`` annotates ``language_model`` as ``GPT2LMHeadModel``, but every AudioLDM-2
    checkpoint holds a ``GPT2Model`` (``cvssp/audioldm2``'s model_index.json and the ``toy`` folder name it,
    and so does the pipeline's own docstring), and ``from_pretrained`` checks each loaded component against
    the annotations (a warning otherwise). The same signature, with the true class; used for loading only.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: ClapModel,
        text_encoder_2: T5EncoderModel | VitsModel,
        projection_model: AudioLDM2ProjectionModel,
        language_model: GPT2Model,
        tokenizer: RobertaTokenizer | RobertaTokenizerFast,
        tokenizer_2: T5Tokenizer | T5TokenizerFast | VitsTokenizer,
        feature_extractor: ClapFeatureExtractor,
        unet: AudioLDM2UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        vocoder: SpeechT5HifiGan,
    ):
        super().__init__(vae, text_encoder, text_encoder_2, projection_model, language_model, tokenizer, tokenizer_2,
                         feature_extractor, unet, scheduler, vocoder)  # fmt: skip


def _from_pretrained(name_or_path: str, **kwargs) -> AudioLDM2Pipeline:
    """``AudioLDM2Pipeline.from_pretrained`` through :class:`_AudioLDM2Folder`, handed back as a plain
    ``AudioLDM2Pipeline`` of the same components (its ``save_pretrained`` names diffusers' class, as before)."""
    loaded = _AudioLDM2Folder.from_pretrained(name_or_path, **kwargs)
    pipe = AudioLDM2Pipeline(**loaded.components)
    pipe.register_to_config(_name_or_path=loaded.config._name_or_path)
    return pipe


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a local folder."""
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


def _from_hub(repo_id: str, dtype: torch.dtype, download: bool) -> AudioLDM2Pipeline:
    """From the local Hugging Face cache, or downloaded when ``download``; a failure (offline,
    unknown id, not cached) becomes one line naming both readings."""
    if not download:
        try:
            return _from_pretrained(repo_id, dtype=dtype, local_files_only=True, use_safetensors=True)
        except OSError:
            raise FileNotFoundError(
                f"AudioLDM-2 '{repo_id}' (named by the mapper's config) is not in the local Hugging Face cache, "
                f"and nothing is downloaded unless you name it: pass audioldm2='{repo_id}' (--audioldm2 {repo_id}) "
                "or a local folder"
            ) from None
    try:
        return _from_pretrained(repo_id, dtype=dtype, use_safetensors=True)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(
            f"AudioLDM-2 '{repo_id}' is no local folder and could not be loaded from the hub ({reason})"
        ) from error


def check_audioldm2_name(option: str, name: str) -> None:
    """ValueError of one line naming `option` unless `name` can be loaded: a built-in name, a diffusers
    folder, or something shaped like a hub id. Reads nothing but the folder listing."""
    if name in BUILT_IN:
        return
    path = os.path.expanduser(name)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(f"{option} {path}: not a diffusers AudioLDM-2 folder (no model_index.json)")
    if not os.path.isdir(path) and (os.path.exists(path) or _looks_like_path(name)):
        raise ValueError(f"{option} {path}: no such folder; give {' or '.join(map(repr, BUILT_IN))}, "
                         "a diffusers folder or a hub id")


def load_audioldm2(
    name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, download: bool = True
) -> AudioLDM2Pipeline:
    """``"tiny"`` -> random tiny pipeline; ``"toy"`` -> the shipped toy pipeline; a local folder -> offline
    load; else a hub id.

    Only a hub id may reach the network, and only with ``download`` (the user named it); without,
    a hub id is read from the local Hugging Face cache or refused. Weights are read as safetensors.
    """
    if name_or_path == "tiny":
        return _placed(build_tiny_audioldm2(), device, dtype)
    path = str(TOY_FOLDER) if name_or_path == "toy" else os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise FileNotFoundError(f"{path} is not a diffusers AudioLDM-2 folder: model_index.json is missing")
        check_component_configs(path)
        pipe = _from_pretrained(path, local_files_only=True, dtype=dtype, use_safetensors=True)
    elif os.path.exists(path) or _looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"AudioLDM-2 folder not found: {path} (expected a diffusers save_pretrained folder, "
            "'tiny', or a hub id such as cvssp/audioldm2)"
        )
    else:
        pipe = _from_hub(name_or_path, dtype, download)
    return _placed(freeze(pipe), device, dtype)  # dtype again: older diffusers ignore the kwarg


def _placed(pipe: AudioLDM2Pipeline, device, dtype: torch.dtype) -> AudioLDM2Pipeline:
    """Move to ``device``; cast only modules not already in ``dtype`` (diffusers warns on every cast)."""
    pipe.to(device)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and any(p.dtype != dtype for p in component.parameters()):
            component.to(dtype=dtype)
    return pipe
