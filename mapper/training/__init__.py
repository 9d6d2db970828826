"""Training the mapper from cached features with PyTorch Lightning.

    module          MapperModule: the mapper as a LightningModule (loss, metrics, optimiser)
    data            MapperDataModule: the feature cache, splits, builds the toy world if asked (ToyWorldSettings)
    batch_plan      the global batch kept across device counts
    order           the epoch order: the same on any device count, resumable mid-epoch
    feature_arrays  zero-copy float16 batches from the cache's Arrow buffers
    checkpointing   atomic checkpoint files
    metrics         held-out MSE / cosine against baselines, temporal score
    language_model  AudioLDM-2's GPT-2, the paper's initialisation
    epoch_exports   the callback that saves the mapper every k epochs (the paper tables' convergence figure)
    flops           the analytic training FLOPs per sample and the GPU throughput goal
    model_card      the Hugging Face model card written beside every exported mapper
"""
from mapper.training.batch_plan import BatchPlan, plan_batches
from mapper.training.data import MapperDataModule, ToyWorldSettings
from mapper.training.module import MapperModule

__all__ = ["BatchPlan", "MapperDataModule", "MapperModule", "ToyWorldSettings", "plan_batches"]
