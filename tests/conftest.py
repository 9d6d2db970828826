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
    from toy_world import make_toy_world

    root = tmp_path_factory.mktemp("toy_world")
    return root, make_toy_world(root, num_clips=16, seed=0)


@pytest.fixture(scope="session")
def toy_cache(toy_world, tmp_path_factory):
    """The toy world's features extracted with the toy recipe's preset (`toy`): path of the cache folder."""
    from extractors.cache import FeatureCache
    from extractors.manifest import list_clips
    from extractors.extraction import extract_to_cache
    from extractors.frozen import FrozenExtractors

    path = tmp_path_factory.mktemp("toy_cache") / "cache"
    extract_to_cache(list_clips(toy_world[1]), FeatureCache(path), FrozenExtractors.from_preset("toy"), progress=False)
    return path


BAD_CLIPS = ("not_a_video", "truncated", "missing_file")


@pytest.fixture(scope="session")
def world_with_bad_files(toy_world):
    """Factory: `make(folder, num_good, insert_at=None)` copies the toy world with its first
    `num_good` CSV rows plus three bad entries (`make.bad_clips`: a text file named .mp4, a
    truncated mp4, a file that does not exist) at `insert_at` (default: the end); returns the CSV."""

    def make(folder, num_good: int, insert_at: int | None = None):
        return _copy_world_with_bad_files(toy_world, folder, num_good, insert_at)

    make.bad_clips = BAD_CLIPS
    return make


def _copy_world_with_bad_files(toy_world, folder, num_good: int, insert_at: int | None):
    import shutil

    root, metadata = toy_world
    shutil.copytree(root / "videos", folder / "videos")
    (folder / "videos" / "not_a_video.mp4").write_text("this is not a video\n")
    good = (folder / "videos" / "toy_00001.mp4").read_bytes()
    (folder / "videos" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    rows = metadata.read_text().splitlines()[:num_good]
    at = len(rows) if insert_at is None else insert_at
    rows[at:at] = [f"{name},0,drum hitting,train" for name in BAD_CLIPS]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder / "metadata.csv"
