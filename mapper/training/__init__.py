"""Training the mapper from cached features with PyTorch Lightning.

    module          MapperModule: the mapper as a LightningModule (loss, metrics, optimiser)
    data            MapperDataModule: the feature cache, splits, builds the toy world if asked
    batch_plan      the global batch kept across device counts
    order           the epoch order: the same on any device count, resumable mid-epoch
    feature_arrays  zero-copy float16 batches from the cache's Arrow buffers
    checkpointing   atomic checkpoint files
    metrics         held-out MSE / cosine against baselines, temporal score
    language_model  AudioLDM-2's GPT-2, the paper's initialisation
    toy_world       the procedural toy-foley world (a library)
"""
from mapper.training.batch_plan import BatchPlan, plan_batches
from mapper.training.data import MapperDataModule, ToyWorld
from mapper.training.module import MapperModule

__all__ = ["BatchPlan", "MapperDataModule", "MapperModule", "ToyWorld", "plan_batches"]
