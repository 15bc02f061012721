"""The embedded `photos` dataset: the 20 real photographs that scikit-image and scikit-learn ship
inside their wheels, for image-to-image tasks (denoising, super-resolution, autoencoders).

Records are {"image": uint8 HxWx3, "name": str}; sizes differ (H x W below), grey photographs
are converted to RGB (three equal channels), so every record has 3 channels. Read straight from
the installed packages' folders, never fetched (scikit-image's other data sets download).

    skimage.data   astronaut 512x512, brick 512x512 (grey), camera 512x512 (grey),
                   cell 660x550 (grey), chelsea 300x451, clock_motion 300x400 (grey),
                   coffee 400x600, coins 303x384 (grey), grass 512x512 (grey),
                   gravel 512x512 (grey), hubble_deep_field 872x1000, ihc 512x512,
                   microaneurysms 102x102 (grey), moon 512x512 (grey), motorcycle_left
                   500x741, motorcycle_right 500x741, retina 1411x1411, rocket 427x640
    sklearn        china 427x640, flower 427x640

Left out as not photographs: chessboard, colorwheel (color.png), logo, text, page, horse (a
silhouette), phantom, the tiny tif/gif test files, lfw_subset (an array of 25x25 faces), and
motorcycle_disp (a disparity map). Split: `test` is the five fixed images in TEST, `train` the
other 15 (the stereo pair motorcycle_left/right stays together in train, so no test scene is
seen in training).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

SKIMAGE = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
           "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
           "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
           "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg")
SKLEARN = ("china.jpg", "flower.jpg")
TEST = ("astronaut", "camera", "chelsea", "coffee", "flower")


def files() -> dict[str, str]:
    """{name: path} of every photograph, in the installed packages."""
    import skimage.data
    import sklearn.datasets

    skimage_dir = os.path.dirname(skimage.data.__file__)
    sklearn_dir = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    paths = [os.path.join(skimage_dir, f) for f in SKIMAGE] + \
        [os.path.join(sklearn_dir, f) for f in SKLEARN]
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths}


def read(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def split_names() -> dict[str, list[str]]:
    names = list(files())
    return {"train": [n for n in names if n not in TEST], "test": list(TEST)}


class Photos(tfds.core.GeneratorBasedBuilder):
    """20 photographs of varying size from scikit-image and scikit-learn, RGB uint8."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "18 skimage + 2 sklearn photographs; 5 fixed test images."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                # A raw tensor (zlib-compressed: its size varies), not Image: encoding PNG in
                # TFDS needs TensorFlow (see digits.py).
                "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8,
                                              encoding="zlib"),
                "name": tfds.features.Text(),
            }),
            homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(names) for split, names in split_names().items()}

    def _generate_examples(self, names):
        paths = files()
        for name in names:
            yield name, {"image": read(paths[name]), "name": name}
