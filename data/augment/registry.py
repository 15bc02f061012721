"""The augmentation-op registry: every op is a parameter draw plus a host and a device apply.

An op is registered by decorating its draw, `draw(s, shape, <args>) -> params`, whose own
signature (with annotations) is the op's signature in a spec string. `s` is a sampler
(sampling.py), `shape` the example's HWC shape. The two applies, `host(np_image, **params)` and
`device(jax_image, **params)`, are deterministic given `params`: that split is what lets the
tests compare the twins exactly, and lets both twins share one draw.

A geometric op also registers `mask_host(mask, fill, **params)` and `mask_device(...)`: the same
drawn transform applied to an integer HxW mask with nearest-neighbour sampling, `fill` where it
reads from outside the image. An op without them (colour, noise, blur, erasing, normalize)
leaves a mask as it is: only geometry moves pixels.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Callable

from errors import UserError

Pair = tuple[float, float]      # a (low, high) range
Floats = tuple[float, ...]      # one value per channel (or one for all)


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    draw: Callable[..., dict]
    host: Callable[..., Any]
    device: Callable[..., Any]
    check: Callable[..., None] | None = None     # raises ValueError(message) on a bad value
    prepare: Callable[..., dict] | None = None   # resolves args once, when a pipeline is built
    mask_host: Callable[..., Any] | None = None  # None: the op leaves a mask untouched
    mask_device: Callable[..., Any] | None = None

    @property
    def moves_pixels(self) -> bool:
        """Whether a mask must follow the op (it has mask twins)."""
        return self.mask_host is not None

    def parameters(self) -> list[inspect.Parameter]:
        """The op's arguments: the draw's parameters after (sampler, shape)."""
        return list(inspect.signature(self.draw, eval_str=True).parameters.values())[2:]


_OPS: dict[str, Op] = {}
# Names that look like per-example ops but act on a whole batch: told apart in the error.
BATCH_LEVEL = {"mixup": "MixUp", "cutmix": "CutMix"}


def register(name: str, *, host, device, check=None, prepare=None, mask_host=None,
             mask_device=None):
    """Decorator on an op's draw: registers the op under `name`."""
    if (mask_host is None) != (mask_device is None):
        raise ValueError(f"augmentation op {name!r}: give both mask twins or neither")

    def wrap(draw):
        if name in _OPS:
            raise ValueError(f"augmentation op {name!r} is registered twice")
        _OPS[name] = Op(name, draw, host, device, check, prepare, mask_host, mask_device)
        return draw

    return wrap


def get(name: str) -> Op:
    if name in BATCH_LEVEL:
        raise UserError(
            f"augmentation {name!r} mixes pairs of examples and their labels, so it is not a "
            "per-example op; use data.augment.mix_batch in the train step instead")
    if name not in _OPS:
        raise UserError(f"unknown augmentation op {name!r}; known ops: {', '.join(names())}")
    return _OPS[name]


def names() -> list[str]:
    return sorted(_OPS)


def conform(op: str, arg: str, value: Any, annotation: Any) -> Any:
    """`value` checked against (and coerced to) the annotation; UserError if it does not fit."""
    for kind in _alternatives(annotation):
        ok, coerced = _fits(value, kind)
        if ok:
            return coerced
    raise UserError(f"augmentation op {op}: argument {arg}={value!r} should be "
                    f"{' or '.join(_describe(k) for k in _alternatives(annotation))}")


def _alternatives(annotation) -> tuple:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fits(value, kind) -> tuple[bool, Any]:
    if kind is type(None):
        return value is None, None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        return _is_number(value), float(value) if _is_number(value) else None
    if kind is str:
        return isinstance(value, str), value
    if kind in (Pair, Floats):
        seq = isinstance(value, (tuple, list)) and all(_is_number(v) for v in value)
        ok = seq and (len(value) == 2 and value[0] <= value[1] if kind is Pair else len(value) >= 1)
        return ok, tuple(float(v) for v in value) if ok else None
    raise TypeError(f"unsupported annotation {kind!r} on an augmentation op")


def _describe(kind) -> str:
    return {int: "an integer", float: "a number", str: "a name", type(None): "None",
            Pair: "a (low, high) pair with low <= high", Floats: "a tuple of numbers"}[kind]


# Argument checks an op's `check` combines: each raises ValueError(message) on a bad value.

def positive(**values) -> None:
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")


def non_negative(**values) -> None:
    for name, v in values.items():
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")


def probability(**values) -> None:
    for name, v in values.items():
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
