"""The tests run offline and never touch the user's MFM_HOME (the record of the last trained mapper)."""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["MFM_HOME"] = tempfile.mkdtemp(prefix="mfm_home_")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    """A small toy-foley world shared by the tests: (root folder, metadata.csv path)."""
    from recipes.make_toy_data import make_toy_world

    root = tmp_path_factory.mktemp("toy_world")
    return root, make_toy_world(root, num_clips=16, seed=0)


@pytest.fixture(scope="session")
def toy_cache(toy_world, tmp_path_factory):
    """The toy world's features extracted with the tiny preset: path of the cache folder."""
    from extractors.cache import FeatureCache
    from extractors.clips import list_clips
    from extractors.extraction import extract_to_cache
    from extractors.frozen import FrozenExtractors

    path = tmp_path_factory.mktemp("toy_cache") / "cache"
    extract_to_cache(list_clips(toy_world[1]), FeatureCache(path), FrozenExtractors.from_preset("tiny"), progress=False)
    return path
