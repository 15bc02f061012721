"""FLOP rules of the architecture sheet: the FLOPs of one jaxpr equation, with the
conventions of XLA's `HloCostAnalysis`.

A multiply-add is 2 FLOPs; a convolution counts only the taps that land on real input (taps
on zero padding or between dilated input pixels are skipped; `dense=True` counts them too, as
the usual hand count 2*K*K*Cin*Cout*H*W does); elementwise ops 1 per output element;
transcendentals (exp, tanh, rsqrt, ...) 0, XLA reports them apart; reductions (input -
output) elements; data movement 0. Also the window text ("5x5/1", "3x3/2 d2") of a conv or
pooling equation.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.receptive_field import REDUCE, REDUCE_WINDOW

_FREE = {  # data movement and bookkeeping: XLA counts no FLOPs for them
    "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "slice",
    "dynamic_slice", "dynamic_update_slice", "concatenate", "pad", "rev", "iota", "copy",
    "copy_p", "gather", "scatter", "split", "sharding_constraint", "device_put",
    "stop_gradient", "random_bits", "random_seed", "random_wrap", "random_unwrap",
    "random_fold_in", "random_split", "threefry2x32", "bitcast_convert_type", "sort",
    "optimization_barrier", "mesh_cast", "reshard", "empty", "zeros_like", "stack",
}
_TRANSCENDENTAL = {  # XLA reports these as 'transcendentals', not 'flops'
    "exp", "exp2", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "asin", "acos",
    "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt",
    "erf", "erfc", "erf_inv", "lgamma", "digamma", "igamma", "igammac", "pow",
    "bessel_i0e", "bessel_i1e", "polygamma", "zeta", "random_gamma_grad",
}
# Primitives whose jaxpr parameter is a per-element computation, not a call to inline.
NOT_CALLS = REDUCE_WINDOW | {"reduce", "scatter", "scatter_add", "scatter_mul", "scatter_min",
                               "scatter_max", "select_and_scatter", "sort"}


def _size(var) -> int:
    return math.prod(var.aval.shape)


def flops(eqn, *, dense: bool = False) -> int:
    name = eqn.primitive.name
    out = sum(_size(v) for v in eqn.outvars)
    if name in _FREE or name in _TRANSCENDENTAL:
        return 0
    if name == "conv_general_dilated":
        return _conv_flops(eqn, dense=dense)
    if name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        shape = eqn.invars[0].aval.shape
        return 2 * out * math.prod(shape[a] for a in contract)
    if name in REDUCE:
        return _size(eqn.invars[0]) - _size(eqn.outvars[0])
    if name in REDUCE_WINDOW:
        return _size(eqn.outvars[0]) * (math.prod(eqn.params["window_dimensions"]) - 1)
    if name == "select_and_scatter_add":   # max-pool backward: select over the window, add
        return _size(eqn.invars[0]) * (math.prod(eqn.params["window_dimensions"]) + 1)
    if name == "convert_element_type":
        return out if eqn.invars[0].aval.dtype != eqn.params["new_dtype"] else 0
    if name == "integer_pow":              # repeated squaring, as XLA expands it
        y = abs(eqn.params["y"])
        return out * max(y.bit_length() - 1 + bin(y).count("1") - 1 + (eqn.params["y"] < 0), 0)
    if name == "logistic":                 # XLA expands it: 1 / (1 + exp(-x))
        return 3 * out
    if name in ("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"):
        return out
    return out  # elementwise arithmetic, comparisons, select


def _conv_flops(eqn, *, dense: bool) -> int:
    """XLA's HloCostAnalysis::GetConvolutionFlops: 2 * multiply-adds over the taps that land
    on a real input pixel (with `dense`, every tap of the window)."""
    p = eqn.params
    lhs, rhs, out = (v.aval.shape for v in (eqn.invars[0], eqn.invars[1], eqn.outvars[0]))
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    positions = 1
    for i in range(len(lhs_spec) - 2):
        k = rhs[rhs_spec[2 + i]]
        n_out, n_in = out[out_spec[2 + i]], lhs[lhs_spec[2 + i]]
        if dense:
            positions *= k * n_out
            continue
        stride, low = p["window_strides"][i], p["padding"][i][0]
        base, dil = p["lhs_dilation"][i], p["rhs_dilation"][i]
        o = np.arange(n_out)[:, None]
        u = o * stride - low + np.arange(k)[None, :] * dil   # index into the dilated input
        valid = (u % base == 0) & (u >= 0) & (u // base < n_in)
        positions *= int(valid.sum())
    batch = lhs[lhs_spec[0]] // p["batch_group_count"]
    in_features = lhs[lhs_spec[1]] // p["feature_group_count"]
    return 2 * positions * batch * in_features * rhs[rhs_spec[0]]


def kernel(eqn) -> str:
    """'5x5/1' for a conv or pooling window over the spatial axes (the dims wider than 1)."""
    p = eqn.params
    if eqn.primitive.name == "conv_general_dilated":
        _, rhs_spec, _ = p["dimension_numbers"]
        shape = eqn.invars[1].aval.shape
        window = [shape[a] for a in rhs_spec[2:]]
        strides, dilation = list(p["window_strides"]), list(p["rhs_dilation"])
    elif eqn.primitive.name in REDUCE_WINDOW:
        dims = [i for i, w in enumerate(p["window_dimensions"]) if w > 1 or
                p["window_strides"][i] > 1]
        if not dims:
            return ""
        window = [p["window_dimensions"][i] for i in dims]
        strides = [p["window_strides"][i] for i in dims]
        dilation = [p["window_dilation"][i] for i in dims]
    else:
        return ""
    text = "x".join(map(str, window)) + "/" + _same_or_list(strides)
    if any(d > 1 for d in dilation):
        text += " d" + _same_or_list(dilation)
    return text


def _same_or_list(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


