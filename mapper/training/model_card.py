"""The model card written beside every trained mapper (``README.md`` in its folder).

Hugging Face's model-card format: YAML metadata (library, tags, base models, datasets) between
``---`` lines, then Markdown. So an exported mapper folder is publishable as any model is
(``huggingface_hub.upload_folder``) and ``huggingface_hub.ModelCard.load(folder / "README.md")``
reads it. The card says what the mapper is (from its config.json), how it was trained (the full
training config), what data it saw (the cache, its preset, clips per split) and how well it did on
held-out clips (the mapper's MSE against the baselines; the toy report when one was rendered).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub import ModelCardData

from extractors.atomic import atomic_write_text

CARD_FILE = "README.md"
LIBRARY = "mfm-mapper"
TAGS = ("video-to-audio", "audio-generation", "mfm-mapper", "audioldm2", "gpt2")


@dataclass
class TrainingRecord:
    """What the card reports besides the mapper's own config.json (all optional but the config)."""

    training_config_yaml: str  # the run's full LightningCLI config, as YAML
    dataset: str  # a short name of the data: "toy-foley (seed 0)" or the cache folder's name
    data_lines: list[str] = field(default_factory=list)  # cache, preset, clips per split, ...
    init_language_model: str | None = None  # the GPT-2 the mapper started from (a hub id or folder), if any
    held_out: str | None = None  # the held-out MSE report (mapper.training.metrics.format_report)
    toy_report: str | None = None  # the toy report table (evaluation.toy_report.format_toy_report)


def card_text(config, record: TrainingRecord) -> str:
    """The whole card for a `MapperConfig` and its `TrainingRecord`."""
    base_models = [record.init_language_model] if _is_hub_id(record.init_language_model) else []
    if _is_hub_id(config.audioldm2) and config.audioldm2 not in base_models:
        base_models.append(config.audioldm2)  # the frozen decoder the tokens condition
    metadata = ModelCardData(library_name=LIBRARY, license="mit", tags=list(TAGS), datasets=[record.dataset],
                             base_model=base_models or None)
    streams = ", ".join(f"{name} ({config.streams[name]['dim']}-d)" for name in config.stream_order)
    sections = [
        f"---\n{metadata.to_yaml()}\n---",
        "# MFM-Mapper",
        "A video-to-audio mapper in the MFM-Mapper style: fused visual features of a video in, the "
        f"{config.num_audio_tokens} pooled AudioMAE tokens ({config.audio_token_dim}-d) that condition "
        f"AudioLDM-2 (`{config.audioldm2}`) out. Load it with the toolkit:",
        "```python\nimport mapper\npipe = mapper.load_pipeline(mapper=\"THIS_FOLDER\")\n"
        "result = pipe(\"clip.mp4\", \"dog barking\")\n```\n"
        "or `python -m recipes.generate clip.mp4 --mapper THIS_FOLDER --out clip.wav`.",
        "## Architecture",
        "\n".join([f"- mapper: {config.mapper_type}, GPT-2 {config.n_layer} layers x {config.audio_token_dim} wide, "
                   f"{config.n_head} heads; loss {config.loss}",
                   f"- visual streams: {streams}; fusion `{config.fusion}`; {config.num_frames} frames",
                   f"- extractor preset `{config.extractor_preset}` (fingerprint {config.extractor_fingerprint}); "
                   f"decoder `{config.audioldm2}`"]),
        "## Training data",
        "\n".join(f"- {line}" for line in [f"dataset: {record.dataset}", *record.data_lines]),
        "## Held-out results",
        _block(record.held_out, "not measured (no test split)"),
    ]
    if record.toy_report:
        sections += ["## Toy report", "Held-out toy clips rendered by the toy AudioLDM-2 "
                     "(class accuracy and FD by the toy classifier, event-sync error in seconds).",
                     _block(record.toy_report, "")]
    sections += ["## Training configuration", f"```yaml\n{record.training_config_yaml.rstrip()}\n```",
                 "## Software", f"- {_versions()}"]
    return "\n\n".join(sections) + "\n"


def write_model_card(folder: str | Path, config, record: TrainingRecord) -> Path:
    """Write (atomically) ``folder/README.md``; returns its path."""
    path = Path(folder) / CARD_FILE
    atomic_write_text(path, card_text(config, record))
    return path


def _block(text: str | None, missing: str) -> str:
    return f"```\n{text.rstrip()}\n```" if text else missing


def _is_hub_id(name: str | None) -> bool:
    """`owner/name` and not a local path: what the Hub's base_model field accepts."""
    return bool(name) and name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def _versions() -> str:
    found = []
    for package in (LIBRARY, "torch", "transformers", "diffusers", "lightning"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found) + f"; Python {platform.python_version()}"
