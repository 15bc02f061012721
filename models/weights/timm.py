"""timm's ImageNet classifiers of the families convjax imports: ResNet-18 to 152, VGG A/B/D/E
with and without BatchNorm, DenseNet-121/169/201 (timm has no AlexNet and no GoogLeNet).

timm keeps torchvision's state-dict names for ResNet and DenseNet. Its VGG runs the first two
dense layers as convolutions on the 7x7 map, `pre_logits.fc1` (O, 512, 7, 7) and
`pre_logits.fc2` (O, 4096, 1, 1), and names the last one `head.fc`; `torchvision_names` maps
them back onto torchvision's `classifier.0/3/6` (the 7x7 kernel flattened in (C, H, W) order,
as torchvision flattens the map), so the rest of the import is models/weights/torchvision.py's.

The preprocessing is the weights' own, from timm's `pretrained_cfg` in the Hugging Face hub's
`config.json` beside `model.safetensors` (timm's ResNet weights differ: `tv_in1k` is
torchvision's 256 -> 224 bilinear, `a1_in1k` 224 / 0.95 -> 224 bicubic): the shorter side
resized to floor(size / crop_pct), the centre size x size crop, mean and std, as timm's eval
transform does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from data.preprocess import RESAMPLING
from errors import UserError, one_line
from models.weights import torchvision as tv

MODELS = tuple(name for name in tv.SOURCES if name.startswith(("resnet", "vgg", "densenet")))
CONFIG = "config.json"
_VGG_NAMES = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3",
              "head.fc": "classifier.6"}


def source(name: str) -> tv.Source:
    if name not in MODELS:
        raise UserError(f"--model {name!r} is not a timm network convjax imports; choose one "
                        f"of {', '.join(MODELS)}")
    return tv.source(name)


def torchvision_names(name: str, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """timm's state dict of `name` under torchvision's names and layouts."""
    if not name.startswith("vgg"):
        return dict(tensors)
    out = {}
    for key, value in tensors.items():
        prefix, _, suffix = key.rpartition(".")
        renamed = _VGG_NAMES.get(prefix, prefix)
        if renamed != prefix and suffix == "weight" and value.ndim == 4:
            value = value.reshape(value.shape[0], -1)  # a conv on the map as the dense layer
        out[f"{renamed}.{suffix}"] = value
    return out


def config_path(weights: Path) -> Path:
    """The hub's config.json beside the weights file; a UserError naming it when absent."""
    path = weights.parent / CONFIG
    if not path.is_file():
        raise UserError(f"{path} does not exist: timm's preprocessing comes from the hub's "
                        f"{CONFIG}, which sits beside model.safetensors; download both")
    return path


def preprocessing(path: Path) -> dict:
    """The config fields of the eval transform that `pretrained_cfg` in `path` describes."""
    try:
        cfg = json.loads(path.read_text()).get("pretrained_cfg", {})
        side = int(cfg["input_size"][-1])
        crop_pct, interpolation = float(cfg.get("crop_pct", 0.875)), cfg.get("interpolation")
        mean, std = tuple(map(float, cfg["mean"])), tuple(map(float, cfg["std"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise UserError(f"{path} is not timm's config.json with a pretrained_cfg (input_size, "
                        f"mean, std): {one_line(err)}") from None
    if interpolation not in RESAMPLING:
        raise UserError(f"{path}: interpolation {interpolation!r} is not one convjax resizes "
                        f"with ({', '.join(RESAMPLING)})")
    return {"image_size": side, "resize_shorter": math.floor(side / crop_pct),
            "center_crop": side, "resize_interpolation": interpolation, "mean": mean,
            "std": std}
