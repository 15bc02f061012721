"""The embedded digits dataset: its fixed stratified split, read back through tfds.data_source."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from data import digits, sources


@pytest.fixture(scope="module")
def splits():
    return {name: sources.open_split("digits", name, None) for name in ("train", "test")}


def _all(source):
    records = [source[i] for i in range(len(source))]
    return np.stack([r["image"] for r in records]), np.array([r["label"] for r in records])


def test_split_sizes(splits):
    assert len(splits["train"]) == 1437
    assert len(splits["test"]) == 360


def test_split_indices_partition_the_set_without_overlap():
    idx = digits.split_indices(load_digits().target)
    assert len(np.intersect1d(idx["train"], idx["test"])) == 0
    assert len(np.union1d(idx["train"], idx["test"])) == 1797


def test_stored_records_are_the_sklearn_images_of_the_documented_split(splits):
    raw = load_digits()
    idx = digits.split_indices(raw.target)
    expected = np.round(raw.images[idx["test"]] * 255 / 16).astype(np.uint8)[..., None]
    images, labels = _all(splits["test"])
    # TFDS stores records in an order hashed from their keys: compare as multisets.
    as_set = lambda ims, labs: sorted((im.tobytes(), int(l)) for im, l in zip(ims, labs))
    assert as_set(images, labels) == as_set(expected, raw.target[idx["test"]])
    assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 1)


def test_labels_are_balanced_like_the_whole_set(splits):
    whole = np.bincount(load_digits().target, minlength=10) / 1797
    for name, source in splits.items():
        counts = np.bincount(_all(source)[1], minlength=10)
        # stratified: each class within one example of its share of the split
        assert np.all(np.abs(counts - whole * len(source)) <= 1.0), (name, counts)


def test_unprepared_dataset_names_the_prepare_command():
    from errors import UserError

    with pytest.raises(UserError, match="launch.py prepare mnist"):
        sources.open_split("mnist", "train", None)


def test_unknown_dataset_and_split_are_user_errors():
    from errors import UserError

    with pytest.raises(UserError, match="unknown dataset"):
        sources.open_split("no_such_dataset_xyz", "train", None)
    with pytest.raises(UserError, match="no split 'val'"):
        sources.open_split("digits", "val", None)


def test_any_tfds_dataset_reads_through_the_same_path():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        source = sources.open_split("cifar10", "train", None)
        assert len(source) == 12
        assert source[0]["image"].shape == (32, 32, 3)
        assert sources.num_classes("cifar10", None) == 10
