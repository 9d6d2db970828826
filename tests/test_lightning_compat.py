"""The recipe's Lightning workarounds (``recipes.lightning_compat``): Lightning's tips stay off the console."""
from __future__ import annotations

import logging

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from recipes.lightning_compat import RANK_ZERO_LOGGER, quiet_lightning_tips


def test_a_trainer_logs_no_tip_once_quieted_and_lightnings_other_lines_pass(caplog, tmp_path, monkeypatch):
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    # Lightning's own state: a test that ran the recipe before may have quieted it (restored afterwards)
    monkeypatch.setattr(logger, "filters", [f for f in logger.filters if type(f).__name__ != "_NoTips"])

    def tips_when_building():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=RANK_ZERO_LOGGER):
            Trainer(logger=CSVLogger(tmp_path), enable_progress_bar=False, enable_model_summary=False)
            logging.getLogger(RANK_ZERO_LOGGER).info("GPU available: False")
        return [r.getMessage() for r in caplog.records]

    before = tips_when_building()
    assert any(message.startswith("💡 Tip:") for message in before)  # what Lightning logs by itself
    quiet_lightning_tips()
    quiet_lightning_tips()  # idempotent: one filter
    after = tips_when_building()
    assert not any(message.startswith("💡 Tip:") for message in after)
    assert "GPU available: False" in after
    assert sum(type(f).__name__ == "_NoTips" for f in logger.filters) == 1
