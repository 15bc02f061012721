"""The embedded `digit_scenes` dataset: scikit-learn's 8x8 digits scattered on 64x64 canvases,
with a per-pixel mask and a box per digit, for segmentation (and later detection) with no
download.

Each scene is a black 64x64 grey canvas (uint8 64x64x1) holding 1-4 digits (how many: uniform).
Each digit is scaled from 8x8 to a square side uniform in 16..24 pixels (2x-3x, PIL bilinear;
values 0..16 first scaled to 0..255) and placed at a uniform position where its square does
not overlap an earlier digit's (up to 50 tries; one that finds no room is left out, so a
scene may hold fewer digits than drawn). With no overlap every pixel belongs to at most one
digit, and each box is one whole digit.

    image   uint8 64x64x1
    mask    uint8 64x64: 0 background, 1 + digit class where the digit's ink is >= INK (128)
    objects Sequence of {bbox: the ink's box, normalised (ymin, xmin, ymax, xmax) with pixel
            edges as coordinates (ink rows r0..r1 give ymin = r0/64, ymax = (r1+1)/64),
            label: ClassLabel(10), digit_index: the digit's index in load_digits()}

Train scenes use only digits of the digits dataset's train split and test scenes only its
test split (data/digits.py's fixed stratified split), so no test digit is ever seen in
training. 2,000 train and 500 test scenes, drawn from a generator seeded by SEED and the
split: preparing takes a few seconds. The mask's class names, "background", "0".."9", are in
the builder's metadata (`mask_classes`), which data/sources.py reads for num_classes.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data import digits

SIZE = 64
SIDES = (16, 24)            # a digit's side in pixels, uniform (inclusive): 2x-3x its 8 pixels
COUNT = (1, 4)              # digits per scene, uniform (inclusive)
INK = 128                   # a pixel >= INK (of 255) is the digit's ink: mask and box
TRIES = 50
SCENES = {"train": 2000, "test": 500}
SEED = 0
MASK_CLASSES = ("background",) + tuple(str(d) for d in range(10))


def scaled_digit(image: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit (values 0..16) as uint8 side x side, bilinear."""
    grey = Image.fromarray(image.astype(np.float32) * (255 / 16), mode="F")
    return np.clip(np.round(np.asarray(grey.resize((side, side), Image.Resampling.BILINEAR))),
                   0, 255).astype(np.uint8)


def _free_spot(rng, taken: np.ndarray, side: int) -> tuple[int, int] | None:
    """A uniform top-left corner whose side x side square touches no taken pixel."""
    for _ in range(TRIES):
        top, left = (int(v) for v in rng.integers(0, SIZE - side, size=2, endpoint=True))
        if not taken[top:top + side, left:left + side].any():
            return top, left
    return None


def ink_box(ink: np.ndarray) -> np.ndarray:
    """The normalised (ymin, xmin, ymax, xmax) of a boolean ink map's True pixels."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    h, w = ink.shape
    return np.array([rows[0] / h, cols[0] / w, (rows[-1] + 1) / h, (cols[-1] + 1) / w],
                    np.float32)


def make_scene(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
               pool: np.ndarray) -> dict:
    """One scene from digits `images[pool]` (8x8, 0..16), as a TFDS example."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    taken = np.zeros((SIZE, SIZE), bool)
    boxes, classes, indices = [], [], []
    count = rng.integers(COUNT[0], COUNT[1], endpoint=True)
    for index in rng.choice(pool, size=count, replace=False):
        side = int(rng.integers(SIDES[0], SIDES[1], endpoint=True))
        spot = _free_spot(rng, taken, side)
        if spot is None:
            continue
        digit = scaled_digit(images[index], side)
        window = np.s_[spot[0]:spot[0] + side, spot[1]:spot[1] + side]
        canvas[window], taken[window] = digit, True
        ink = np.zeros_like(taken)
        ink[window] = digit >= INK
        mask[ink] = labels[index] + 1
        boxes.append(ink_box(ink))
        classes.append(int(labels[index]))
        indices.append(int(index))
    return {"image": canvas[..., None], "mask": mask,
            "objects": {"bbox": np.stack(boxes), "label": classes,
                        "digit_index": np.array(indices, np.int64)}}


def scenes(split: str):
    """(key, example) for every scene of `split`, deterministic."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    pool = digits.split_indices(raw.target)[split]
    rng = np.random.default_rng([SEED, list(SCENES).index(split)])
    for i in range(SCENES[split]):
        yield i, make_scene(rng, raw.images, raw.target, pool)


class DigitScenes(tfds.core.GeneratorBasedBuilder):
    """1-4 scaled sklearn digits on a 64x64 canvas, with a class mask and boxes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "2,000 / 500 scenes, digits 16-24 px, no overlap, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                # Raw tensors, not Image: encoding PNG in TFDS needs TensorFlow (see digits.py).
                "image": tfds.features.Tensor(shape=(SIZE, SIZE, 1), dtype=np.uint8),
                "mask": tfds.features.Tensor(shape=(SIZE, SIZE), dtype=np.uint8),
                "objects": tfds.features.Sequence({
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(num_classes=10),
                    "digit_index": tfds.features.Tensor(shape=(), dtype=np.int64),
                }),
            }),
            metadata=tfds.core.MetadataDict(mask_classes=list(MASK_CLASSES)),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SCENES}

    def _generate_examples(self, split):
        yield from scenes(split)
