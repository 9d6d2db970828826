"""Where the toy recipe keeps its data unless told otherwise, relative to the folder it runs in.

Named once here: ``python -m recipes.train_mapper`` with no arguments builds the world and its
feature cache there (they are ``MapperDataModule``'s defaults, so ``recipes/configs/toy.yaml`` does
not repeat them), the demo takes its toy examples from the world, and the paper tables' toy grid
defaults to them (the quick grid keeps its smaller world inside its ``--out``). Strings, not paths: they are LightningCLI defaults, printed as written.
"""
TOY_DATA = "data/toy"
WORLD_DIR = f"{TOY_DATA}/world"  # the toy world (built if absent)
CACHE_DIR = f"{TOY_DATA}/cache"  # its features, extracted with the recipe's preset
