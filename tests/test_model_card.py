"""The model card beside every trained mapper parses as a Hugging Face card and says what it must."""
from __future__ import annotations

from huggingface_hub import ModelCard

from extractors.presets import get_preset
from mapper.config import MapperConfig
from mapper.training.model_card import CARD_FILE, TrainingRecord, write_model_card


def _record(**overrides) -> TrainingRecord:
    fields = dict(training_config_yaml="trainer:\n  max_epochs: 3\n", dataset="toy-foley (seed 0)",
                  data_lines=["clips: train 4, val 2, test 2"], held_out="held-out clips: 2\nmapper 0.0163")
    return TrainingRecord(**{**fields, **overrides})


def test_card_parses_with_metadata_config_data_and_figures(tmp_path):
    config = MapperConfig.from_preset(get_preset("tiny"), audioldm2="toy", n_layer=2, n_head=2)
    path = write_model_card(tmp_path, config, _record(toy_report="oracle 1.00 0.506 7.70"))
    assert path == tmp_path / CARD_FILE
    card = ModelCard.load(path)
    assert card.data.library_name == "mfm-mapper" and "video-to-audio" in card.data.tags
    assert card.data.datasets == ["toy-foley (seed 0)"]
    assert card.data.base_model is None  # a toy mapper starts from no published model
    for text in ("max_epochs: 3", "clips: train 4, val 2, test 2", "mapper 0.0163", "oracle 1.00 0.506 7.70",
                 f"{config.num_audio_tokens} pooled AudioMAE tokens", "extractor preset `tiny`"):
        assert text in card.text, text


def test_card_names_the_published_models_it_started_from(tmp_path):
    config = MapperConfig.from_preset(get_preset("tiny"), audioldm2="cvssp/audioldm2", n_layer=2, n_head=2)
    card = ModelCard.load(write_model_card(tmp_path, config, _record(init_language_model="cvssp/audioldm2",
                                                                      held_out=None)))
    assert card.data.base_model == ["cvssp/audioldm2"]  # its GPT-2 and its decoder: one repository, named once
    assert "not measured (no test split)" in card.text
