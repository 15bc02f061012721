"""`normalize`: per-channel (x - mean) / std, with the statistics given or looked up by dataset.

`normalize(cifar10)` resolves the name once, when a pipeline is built, through the module-level
`stats_lookup` below, which reads the cache `launch.py stats cifar10` writes (data/stats.py);
tests replace it with `monkeypatch.setattr("data.augment.normalize.stats_lookup", fn)`.
`normalize(mean=..., std=...)` takes the numbers directly (one per channel, or one for all).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from data.augment.registry import Floats, register
from errors import UserError


def stats_lookup(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of dataset `name`'s training images, in [0, 1] units."""
    from data import stats  # imported when used: it pulls in TFDS

    return stats.lookup(name)


def normalize(xp, image, mean, std):
    mean, std = xp.asarray(mean, xp.float32), xp.asarray(std, xp.float32)
    return (image - mean) / std


def _check(name, mean, std):
    if (name is None) == (mean is None and std is None) or (mean is None) != (std is None):
        raise ValueError("give a dataset name, normalize(cifar10), or both numbers, "
                         "normalize(mean=(0.5,), std=(0.25,)), not both or neither")
    if std is not None and min(_as_tuple(std)) <= 0:
        raise ValueError(f"std must be > 0, got {std}")


def _resolve(name, mean, std):
    """Called once per pipeline: the dataset's statistics replace its name."""
    if name is not None:
        mean, std = stats_lookup(name)
    return dict(name=None, mean=_as_tuple(mean), std=_as_tuple(std))


def _as_tuple(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.atleast_1d(values))


def _check_channels(shape, values):
    if len(values) not in (1, shape[-1]):
        raise UserError(f"augmentation op normalize: {len(values)} statistics for a "
                        f"{shape[-1]}-channel image; give one or {shape[-1]}")


@register("normalize", host=lambda image, **p: normalize(np, image, **p),
          device=lambda image, **p: normalize(jnp, image, **p), check=_check, prepare=_resolve)
def draw_normalize(s, shape, name: str | None = None, mean: Floats | float | None = None,
                   std: Floats | float | None = None):
    """Deterministic: (x - mean) / std per channel; usually the last op."""
    _check_channels(shape, mean)
    _check_channels(shape, std)
    return dict(mean=mean, std=std)
