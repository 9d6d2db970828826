"""The zero-copy feature reader returns exactly what `datasets` returns, in the sampler's order,
also through `select` index mappings and across several Arrow chunks (cache shards)."""
import datasets
import numpy as np
import torch

from mapper.training.feature_arrays import FeatureArrays


def make_dataset(rows: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    features = datasets.Features(x=datasets.Array2D((3, 4), "float16"), y=datasets.Array2D((2, 5), "float16"))
    data = {"x": list(rng.standard_normal((rows, 3, 4)).astype(np.float16)), "y": list(rng.standard_normal((rows, 2, 5)).astype(np.float16))}
    return datasets.Dataset.from_dict(data, features=features)


def test_batches_match_datasets_through_index_mappings_and_chunks():
    dataset = datasets.concatenate_datasets([make_dataset(7, 0), make_dataset(5, 1), make_dataset(6, 2)])
    dataset = dataset.select(np.random.default_rng(3).permutation(len(dataset)))  # an index mapping
    assert dataset._indices is not None and dataset.data.column("x").num_chunks == 3
    reference = dataset.with_format("numpy")
    rows = np.array([11, 2, 17, 5, 0, 9])  # the split this reader serves
    arrays = FeatureArrays(dataset, ["x", "y"], rows)
    positions = [4, 0, 5, 2]  # a shuffled batch, crossing chunks
    batch = arrays.__getitems__(positions)
    assert batch["x"].dtype == torch.float16 and batch["x"].shape == (4, 3, 4)
    for name in ("x", "y"):
        expected = np.stack([reference[int(rows[p])][name] for p in positions]).astype(np.float16)
        np.testing.assert_array_equal(batch[name].numpy(), expected)
    np.testing.assert_array_equal(arrays[1]["y"].numpy(), reference[int(rows[1])]["y"].astype(np.float16))


def test_rows_default_to_the_whole_dataset():
    dataset = make_dataset(4, 0)
    arrays = FeatureArrays(dataset, ["x"])
    assert len(arrays) == 4
    np.testing.assert_array_equal(arrays.__getitems__([3])["x"][0].numpy(), np.asarray(dataset.with_format("numpy")[3]["x"], dtype=np.float16))
