"""The lecture's claim measured: convolution is equivariant to translation, pooling roughly
invariant, the output (almost) unchanged.

Shift the input by k pixels along its width. For a layer of effective stride s (the
architecture sheet's jump), the equivariance error is ||f(shift_k x) - shift_{k/s} f(x)|| /
||f(x)|| (k/s rounded when s does not divide k, which is itself a loss of equivariance) and
the invariance distance ||f(shift_k x) - f(x)|| / ||f(x)||. `mode` "circular" rolls
(exact equivariance for a circularly padded stride-1 stack), "zeros" shifts in zeros (a
digit's blank margin makes that a translation of the digit); the map's columns the shift
empties are then left out of the comparison (they hold a bias, not a shifted feature). The
output change is the total variation between the class probabilities.

Measured on the default experiment's LeNet-5 (eval image 3): a 4-pixel shift leaves c1, pool#1,
c3 and pool#2 exactly equivariant (error 0.000; invariance distances 0.89, 0.88, 0.81, 0.85)
and moves the probabilities by 0.0003; a 2-pixel shift is no multiple of pool#2's stride 4,
whose error is then 0.48, as large as its invariance distance.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from analysis import figures, taps


def shift(x: jax.Array, k: int, axis: int, mode: str = "zeros") -> jax.Array:
    """`x` moved by k positions along `axis` (positive: towards higher indices)."""
    rolled = jnp.roll(x, k, axis=axis)
    if mode == "circular" or k == 0:
        return rolled
    index = jnp.arange(x.shape[axis]).reshape([-1 if a == axis % x.ndim else 1
                                               for a in range(x.ndim)])
    keep = index >= k if k > 0 else index < x.shape[axis] + k
    return jnp.where(keep, rolled, 0)


@dataclasses.dataclass(frozen=True)
class Row:
    layer: str
    stride: int
    equivariance_error: float
    invariance_distance: float


def layer_distances(model: nnx.Module, image: np.ndarray, k: int, strides: dict[str, int], *,
                    mode: str = "zeros") -> tuple[list[Row], float]:
    """(one Row per layer of `strides` (name -> effective stride along W), output change)."""
    names = tuple(strides)

    def both(m, x):
        moved = shift(x, k, 2, mode)
        out, maps = taps.run(m, x, names)
        out_moved, maps_moved = taps.run(m, moved, names)
        change = 0.5 * jnp.abs(jax.nn.softmax(out_moved) - jax.nn.softmax(out)).sum()
        return maps, maps_moved, change

    maps, moved, change = taps.pure(model, both)(jnp.asarray(image)[None])
    rows = []
    for name, s in strides.items():
        a, b = maps[name], moved[name]
        norm = float(jnp.linalg.norm(a)) or 1.0
        m = round(k / s)
        expected = jnp.roll(a, m, axis=2)
        if mode == "zeros" and m:  # the columns shifted in hold no shifted map: left out
            keep = slice(m, None) if m > 0 else slice(None, m)
            expected, b_kept = expected[:, :, keep], b[:, :, keep]
        else:
            b_kept = b
        rows.append(Row(name, s, float(jnp.linalg.norm(b_kept - expected)) / norm,
                        float(jnp.linalg.norm(b - a)) / norm))
    return rows, float(change)


def sheet_strides(model: nnx.Module, image_shape: tuple[int, ...]) -> dict[str, int]:
    """name -> effective stride along W of every layer with a spatial feature map, from the
    architecture sheet (layers with a global or fractional stride left out)."""
    from analysis import sheet

    found = sheet.summarize_module(model, image_shape, check_xla=False)
    out = {}
    for layer in found.layers:
        if (len(layer.output_shape) == 3 and taps.spatial(layer.output_shape)
                and layer.stride and not isinstance(layer.stride[1], str)
                and layer.stride[1].denominator == 1):
            out[layer.name] = int(layer.stride[1])
    return out


def equivariance_figure(rows: list[Row], change: float, curve: dict[int, float], path: Path,
                        *, title: str, k: int, mode: str) -> Path:
    fig, axes = figures.figure(1, 2, panel=3.6, title=title)
    ax = axes[0, 0]
    x = np.arange(len(rows))
    for offset, values, label in (
            (-0.2, [r.equivariance_error for r in rows],
             "equivariance error ||f(Tx) - T'f(x)|| / ||f(x)||"),
            (0.2, [r.invariance_distance for r in rows],
             "invariance distance ||f(Tx) - f(x)|| / ||f(x)||")):
        bars = ax.bar(x + offset, values, 0.4, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=6)  # a zero bar still shows its value
    top = max([r.invariance_distance for r in rows] + [r.equivariance_error for r in rows])
    ax.set_ylim(0, 1.35 * max(top, 1e-3))
    ax.set_xticks(x, [f"{r.layer}\n(stride {r.stride})" for r in rows], fontsize=6,
                  rotation=45)
    ax.set_ylabel("relative distance", fontsize=8)
    ax.set_title(f"shift by {k} px ({mode}); output change (TV of probabilities) "
                 f"{change:.4f}", fontsize=8)
    ax.legend(fontsize=6, loc="upper center")
    ax.tick_params(labelsize=7)
    ax = axes[0, 1]
    ax.plot(list(curve), list(curve.values()), marker="o")
    ax.set_xlabel("shift k (px, along the width)", fontsize=8)
    ax.set_ylabel("output change (total variation)", fontsize=8)
    ax.set_ylim(0, max(0.01, 1.2 * max(curve.values())))
    ax.grid(alpha=0.3)
    ax.set_title("how much the class probabilities move", fontsize=8)
    ax.tick_params(labelsize=7)
    return figures.save(fig, path)
