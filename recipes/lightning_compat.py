"""Two Lightning quirks the training recipe works around: its pytree leaves through torch's current API (no
deprecation warning on every ``Trainer.fit``), and its advertising tips kept off the recipe's console.

Every ``Trainer.fit`` wraps the dataloaders in a ``CombinedLoader``, which flattens them with
``lightning.pytorch.utilities._pytree._tree_flatten``; that function builds each leaf's spec with
``torch.utils._pytree.LeafSpec()``, a constructor torch deprecated (a ``FutureWarning``, "`isinstance(treespec,
LeafSpec)` is deprecated", since torch 2.9) for ``treespec_leaf()``, the factory of the same, shared leaf spec.
Lightning up to 2.6.6 (the newest) still calls the constructor, and its own test suite only filters the warning
(Lightning-AI/pytorch-lightning#21502). A version pin would mean torch < 2.9. So the recipe makes Lightning's
flattening call the factory torch names: the same spec, the deprecated call no longer made.

Every ``Trainer`` built without Lightning's own cloud logger logs an INFO line that begins "💡 Tip:" and
recommends installing ``litlogger`` (``logger_connector.on_trainer_init``). The recipe's console is for its
progress and its figures, so ``quiet_lightning_tips`` filters those lines out of Lightning's rank-zero logger;
its other messages pass.
"""
from __future__ import annotations

import logging

TIP_PREFIX = "💡 Tip:"
RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


def quiet_lightning_tips() -> None:
    """Drop Lightning's "💡 Tip:" lines (product advice) from its rank-zero logger. Idempotent."""
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _NoTips) for f in logger.filters):
        logger.addFilter(_NoTips())


def use_treespec_leaf() -> None:
    """Make Lightning's ``_tree_flatten`` build leaf specs with ``torch.utils._pytree.treespec_leaf``.

    Does nothing on a torch without ``treespec_leaf`` (nothing is deprecated there) or a Lightning whose
    ``_pytree`` no longer names torch's ``LeafSpec`` (fixed upstream). Idempotent.
    """
    from lightning.pytorch.utilities import _pytree as lightning_pytree
    from torch.utils import _pytree as torch_pytree

    factory = getattr(torch_pytree, "treespec_leaf", None)
    if factory is not None and getattr(lightning_pytree, "LeafSpec", None) is getattr(torch_pytree, "LeafSpec", None):
        lightning_pytree.LeafSpec = factory
