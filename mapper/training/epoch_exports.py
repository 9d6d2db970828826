"""A Lightning callback that saves the mapper every k epochs: the points of the convergence figure.

Named in a run's training overlay (``trainer.callbacks``), so ``recipes.train_mapper`` runs it like any
callback of its YAML. Each export is ``MapperModule.export`` (the mapper's ``save_pretrained``, its envelope
predictor and generation defaults) into ``FOLDER/epochNNNN`` (what
``recipes.generate --mapper`` reads), written to a temporary folder and renamed, so a killed run
leaves only whole exports, and a resumed run does not rewrite the ones it has.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L

from extractors.atomic import atomic_path


def export_folder(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / f"epoch{epoch:04d}"


def exported_epochs(folder: str | Path) -> list[int]:
    """The epochs with a complete export in ``folder``, ascending."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in folder.glob("epoch[0-9][0-9][0-9][0-9]") if p.is_dir())


class EpochExports(L.Callback):
    def __init__(self, folder: str, every_n_epochs: int = 1):
        """Save the mapper to ``folder/epochNNNN`` after every ``every_n_epochs``-th epoch and after the last."""
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.folder, self.every_n_epochs = Path(folder), every_n_epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # epochs finished
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        target = export_folder(self.folder, epoch)
        if trainer.is_global_zero and not target.exists():  # one writer; a resumed run keeps what it has
            with atomic_path(target) as tmp:
                pl_module.export(tmp)
