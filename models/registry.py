"""The model registry: every network is created by name, with its published default input.

A factory is a function `(*, num_classes, in_channels, rngs, **options) -> nnx.Module`; an
image-to-image network (`output="image"`) takes no `num_classes`. A spec's `output` says what
the network produces, so a task can refuse a network that does not fit it before anything is
built: "class_logits" (B, K), "pixel_logits" (B, H', W', K), "image" (B, H', W', C) or
"gan" (a generator and discriminator pair, models/dcgan.py).
"sample_logits" (B, T, K) are an autoregressive signal model's logits of sample t+1 over K
quantisation levels at every step t (models/wavenet.py; its input is (B, T) int codes).
`input_shape` is (H, W, C) for an image network and (T, C), samples by channels, for a 1-D one:
the channels are the last entry either way.
"grid_detections" (B, S, S, B*5 + K) are a YOLO-style detector's per-cell boxes,
confidences and class probabilities (models/yolo.py).
Registering it under its `model_params.json` key (plus friendlier aliases) is what makes it
reachable from a config (`model.name`) and from `launch.py summary`.

This module imports no family: the family modules import it to register themselves, and
`models/__init__.py` imports them all (models/families.py) right after it, so the table is
full whenever anything under `models` has been imported, and no import goes in a circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from flax import nnx


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[..., nnx.Module]
    input_shape: tuple[int, ...]  # (H, W, C) the paper trains on; (T, C) for 1-D networks
    num_classes: int | None     # None for image-to-image networks
    aliases: tuple[str, ...] = ()
    output: str = "class_logits"
    # Whether XLA's CPU compiler hands this network's reductions to YNNPACK
    # (models/conv_lowering.py: `compiler_options`); False where its own measured faster
    ynn_reductions: bool = True


_SPECS: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered; its message lists the known names."""


OUTPUTS = ("class_logits", "pixel_logits", "image", "gan", "sample_logits",
           "grid_detections")


def register(name: str, *, input_shape: tuple[int, ...], num_classes: int | None,
             aliases: tuple[str, ...] = (), output: str = "class_logits",
             ynn_reductions: bool = True):
    """Decorator: registers `factory` under `name` (and `aliases`)."""

    if output not in OUTPUTS:
        raise ValueError(f"model {name!r}: output {output!r} is not one of {OUTPUTS}")

    def wrap(factory):
        for key in (name, *aliases):
            if key in _SPECS or key in _ALIASES:
                raise ValueError(f"model name {key!r} is registered twice")
        _SPECS[name] = ModelSpec(name, factory, tuple(input_shape), num_classes, tuple(aliases),
                                output, ynn_reductions)
        _ALIASES.update({alias: name for alias in aliases})
        return factory

    return wrap


def spec(name: str) -> ModelSpec:
    canonical = _ALIASES.get(name, name)
    if canonical not in _SPECS:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(_SPECS))} "
            "(list them with `launch.py models`)")
    return _SPECS[canonical]


def names() -> list[str]:
    """Canonical names of all registered networks, sorted."""
    return sorted(_SPECS)


def create(name: str, *, num_classes: int | None = None, in_channels: int | None = None,
           seed: int = 0, rngs: nnx.Rngs | None = None, **options: Any) -> nnx.Module:
    """Builds network `name`; classes and channels default to the paper's."""
    s = spec(name)
    if rngs is None:
        rngs = nnx.Rngs(params=seed, dropout=seed + 1)
    if s.output != "image":
        options["num_classes"] = s.num_classes if num_classes is None else num_classes
    return s.factory(in_channels=s.input_shape[-1] if in_channels is None else in_channels,
                     rngs=rngs, **options)

