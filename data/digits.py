"""The embedded `digits` dataset: scikit-learn's 1,797 handwritten 8x8 digits as a TFDS builder.

scikit-learn ships the images inside its wheel, so preparing needs no download. The split is
fixed and stratified: 360 test examples (36 per class) and 1,437 train, chosen by
`train_test_split(..., stratify=labels, random_state=0)`. Pixel values 0..16 are scaled to 0..255.
Images are stored as raw `Tensor` features rather than `Image` ones, because encoding PNG in
TFDS needs TensorFlow, which convjax does not depend on.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

TEST_SIZE = 360
SPLIT_SEED = 0


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The documented stratified split, as sorted indices into sklearn's order."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE,
                                   stratify=labels, random_state=SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (UCI optdigits test set), 8x8x1 uint8, 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 1,437 / 360 split, random_state=0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        from sklearn.datasets import load_digits

        raw = load_digits()
        images = np.round(raw.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        return {name: self._generate_examples(images[idx], raw.target[idx], idx)
                for name, idx in split_indices(raw.target).items()}

    def _generate_examples(self, images, labels, indices):
        for image, label, index in zip(images, labels, indices):
            yield int(index), {"image": image, "label": int(label)}
