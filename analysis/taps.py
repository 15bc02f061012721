"""Reading (and nudging) the output of any layer of an NNX network, by its module path.

A layer is one call of a submodule, named by its attribute path (`c1`, `layer2.0.conv1`,
`features.3`); a module called more than once (a shared pooling layer) gives `pool#1`,
`pool#2`, ..., the architecture sheet's names for the same calls.

How. While the network runs, `__call__` of every submodule's class is wrapped for the
duration of one forward pass; the wrapper acts only on this network's instances (by
identity), records the output of the calls asked for, and may add a tensor to it. Adding a
zero tensor and differentiating with respect to it is how a gradient at a layer is taken
(Grad-CAM), without a second copy of the network.

Why this and not Flax's own facilities: `Module.sow` needs a line in every model;
`nnx.capture(..., method_outputs=...)` wraps every public method of every class, records them
all (a ResNet's blocks, convs and norms, every call) and cannot change an output, so it gives
activations but not gradients at a layer; it also misses a `__call__` a class inherits.
Wrapping `__call__` per instance works on every network of the zoo unchanged, and the
architecture sheet already names layers the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from errors import UserError


def inference(model: nnx.Module) -> nnx.Module:
    """`model` in inference mode: BatchNorm on its running statistics, no dropout."""
    return nnx.view(model, deterministic=True, use_running_average=True,
                    raise_if_not_found=False)


def _submodules(model: nnx.Module) -> dict[int, str]:
    """id -> attribute path of every submodule (the network itself left out)."""
    return {id(m): ".".join(str(p) for p in path)
            for path, m in nnx.iter_modules(model) if path}


def call_of(name: str) -> tuple[str, int]:
    """A layer name as (module path, k-th call): `pool#2` -> ("pool", 2); `c1` -> ("c1", 1)."""
    path, sep, k = name.rpartition("#")
    return (path, int(k)) if sep and k.isdigit() else (name, 1)


def _name(path: str, k: int, counts: dict[str, int]) -> str:
    return f"{path}#{k}" if counts.get(path, 1) > 1 else path


class _Stop(Exception):
    """Raised once every layer asked for is recorded: the rest of the pass is not run."""


@dataclasses.dataclass
class _Tap:
    wanted: dict[tuple[str, int], str]          # (path, k-th call) -> name to record it as
    add: dict[tuple[str, int], jax.Array]
    stop: bool = False
    everything: bool = False                    # record every call (to list the layers)
    outputs: dict = dataclasses.field(default_factory=dict)
    order: list[tuple[str, int]] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _wrapped(model: nnx.Module, tap: _Tap) -> Iterator[None]:
    paths = _submodules(model)
    active: set[int] = set()       # a class and its base both wrapped: the outer call wins
    seen: dict[str, int] = {}

    def wrap(call):
        def tapped(self, *args, **kwargs):
            if id(self) not in paths or id(self) in active:
                return call(self, *args, **kwargs)
            active.add(id(self))
            try:
                out = call(self, *args, **kwargs)
            finally:
                active.discard(id(self))
            path = paths[id(self)]
            seen[path] = seen.get(path, 0) + 1
            key = (path, seen[path])
            tap.order.append(key)
            if tap.everything:
                tap.outputs[key] = out
            elif key in tap.wanted:
                tap.outputs[tap.wanted[key]] = out
            if key in tap.add:
                out = out + tap.add[key]
            if tap.stop and len(tap.outputs) == len(tap.wanted) and all(
                    k in tap.order for k in tap.add):
                raise _Stop
            return out
        return tapped

    classes = {type(m) for path, m in nnx.iter_modules(model) if path}
    saved = {cls: cls.__dict__.get("__call__") for cls in classes}
    try:
        for cls in classes:
            cls.__call__ = wrap(cls.__call__)
        yield
    finally:
        for cls, original in saved.items():
            if original is None:
                del cls.__call__
            else:
                cls.__call__ = original


def layers(model: nnx.Module, image_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """name -> output shape (no batch axis) of every layer, in the order they run (in
    inference mode)."""
    graphdef, state = nnx.split(inference(model))  # weights as arguments: may be abstract
    tap = _Tap({}, {}, everything=True)

    def forward(state, x):
        module = nnx.merge(graphdef, state)
        with _wrapped(module, tap):
            module(x)
        return {key: y for key, y in tap.outputs.items() if isinstance(y, jax.Array)}

    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
    try:
        shapes = jax.eval_shape(forward, abstract,
                                jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
    except (TypeError, ValueError) as err:
        raise UserError(f"the network cannot run on a {'x'.join(map(str, image_shape))} input: "
                        f"{str(err).splitlines()[0]}") from None
    counts: dict[str, int] = {}
    for path, k in tap.order:
        counts[path] = max(counts.get(path, 0), k)
    return {_name(*key, counts): tuple(shapes[key].shape[1:]) for key in tap.order
            if key in shapes}


def check_layer(model: nnx.Module, image_shape: tuple[int, ...], name: str,
                kinds: Callable[[tuple[int, ...]], bool] = lambda shape: True,
                what: str = "layer") -> tuple[int, ...]:
    """The output shape of layer `name`; a UserError listing the valid names otherwise."""
    found = {n: s for n, s in layers(model, image_shape).items() if kinds(s)}
    if name not in found:
        listed = ", ".join(found) if len(found) <= 40 else ", ".join(list(found)[:40]) + ", ..."
        raise UserError(f"--layer {name!r} is not a {what} of this network; choose one of: "
                        f"{listed or '(none)'}")
    return found[name]


def spatial(shape: tuple[int, ...]) -> bool:
    """A feature map (H, W, C) with more than one position."""
    return len(shape) == 3 and shape[0] * shape[1] > 1


def feature_maps(model: nnx.Module, image_shape: tuple[int, ...]) -> list[str]:
    """The layers whose output is a spatial feature map, in the order they run."""
    return [n for n, s in layers(model, image_shape).items() if spatial(s)]


def last_feature_map(model: nnx.Module, image_shape: tuple[int, ...]) -> str:
    """The last layer whose output is a spatial feature map (Grad-CAM's usual choice)."""
    maps = feature_maps(model, image_shape)
    if not maps:
        raise UserError("this network has no layer with a spatial feature map to analyse")
    return maps[-1]


def run(model: nnx.Module, x: jax.Array, record: tuple[str, ...] = (),
        add: dict[str, jax.Array] | None = None, *,
        stop: bool = False) -> tuple[jax.Array | None, dict[str, jax.Array]]:
    """`model(x)` and the outputs of the layers named in `record`; `add` adds a tensor to a
    layer's output on the way (zeros: the output unchanged, and a handle for its gradient).
    With `stop`, the pass ends once those layers have run (the output is then None), so a
    layer can be read at input sizes the network's later layers would refuse. Works under
    jit and grad: the wrapping is undone before this returns. Names are checked by
    `check_layer`; here a name that never runs is a UserError."""
    tap = _Tap({call_of(n): n for n in record}, {call_of(n): v for n, v in (add or {}).items()},
               stop=stop)
    out = None
    try:
        with _wrapped(model, tap):
            out = model(x)
    except _Stop:
        pass
    missing = [n for n in (*record, *(add or {})) if call_of(n) not in tap.order]
    if missing:
        ran = ", ".join(p if k == 1 else f"{p}#{k}" for p, k in tap.order)
        raise UserError(f"--layer {missing[0]!r} is not a layer this network runs; it ran: "
                        f"{ran}")
    return out, {n: tap.outputs[n] for n in record}


def pure(model: nnx.Module, fn: Callable) -> Callable:
    """`fn(module, *args)` jitted as a function of the weights and `args`, in inference mode:
    the weights are arguments, not constants compiled into the program (an imported VGG-16
    holds 550 MB)."""
    graphdef, state = nnx.split(inference(model))
    jitted = jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args))
    return lambda *args: jitted(state, *args)
