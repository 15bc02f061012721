"""Receptive-field rules of the architecture sheet: how each jaxpr primitive maps the
receptive field (RF) and effective stride (jump) of its inputs to its outputs.

Each value carries, per spatial dimension of the input image (H, W), a `Span`: the value's
axis running along that dimension, the RF size and jump in input pixels, and the input
coordinate of the centre of element 0's RF (element i's is centre + i * jump), or GLOBAL.
A window op (conv, pooling) of kernel k, stride s, dilation d gives size + (k-1)*d*jump,
jump*s, the lecture's recursion; elementwise ops and concatenation take the union (hull) of
their inputs' RFs, which covers branches (residual, Inception, DenseNet); reshapes,
transposes, slices and padding move them; a reduction or contraction over a spatial axis
(flatten + dense, global pooling) makes the RF GLOBAL, the whole input.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

GLOBAL = "global"  # a value that depends on the whole input along a spatial dimension
N_SPATIAL = 2  # images are (batch, H, W, C); a field has one entry per input spatial dimension
                # (1 for signals (batch, T, C)), so `all_global` counts them from the fields

REDUCE = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
          "reduce_xor", "argmax", "argmin", "reduce"}
REDUCE_WINDOW = {"reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window"}


@dataclasses.dataclass(frozen=True)
class Span:
    """How one spatial dimension of the input maps onto one axis of a value."""
    axis: int          # the value's axis that runs along this input dimension
    size: Fraction     # receptive field: input pixels one element depends on
    jump: Fraction     # effective stride: input pixels between neighbours along `axis`
    center: Fraction   # input coordinate of the centre of element 0's receptive field


# A field: one Span or GLOBAL per input spatial dimension, or None for a value that does not
# depend on the input image (parameters, constants).
Field = tuple | None


def all_global(fields: list[Field]) -> Field:
    """GLOBAL along every spatial dimension of the input that `fields` (not all None) follow."""
    return (GLOBAL,) * len(next(f for f in fields if f is not None))


def output_fields(eqn, in_fields: list[Field], notes: list[str]) -> list[Field]:
    """The fields of `eqn`'s outputs from its inputs' (see the module docstring)."""
    if all(f is None for f in in_fields):
        return [None] * len(eqn.outvars)
    name = eqn.primitive.name
    rule = _RULES.get(name)
    if rule is not None:
        out = rule(eqn, in_fields)
        return out if isinstance(out, list) else [out]
    inputs = [(tuple(v.aval.shape), f) for v, f in zip(eqn.invars, in_fields) if f is not None]
    if all(_elementwise(s, f, tuple(v.aval.shape)) for v in eqn.outvars for s, f in inputs):
        return [union(in_fields)] * len(eqn.outvars)   # elementwise
    note = f"receptive fields are not followed through `{name}`: reported as global"
    if note not in notes:
        notes.append(note)
    return [all_global(in_fields)] * len(eqn.outvars)


def _elementwise(shape: tuple, field: Field, out: tuple) -> bool:
    """An input of `shape` maps element for element onto the output: the same shape, or size 1
    (broadcast implicitly, as lax's ops do: `eq` in jax.nn.one_hot) on axes no span runs along."""
    spans = {s.axis for s in field if s != GLOBAL}
    return len(shape) == len(out) and all(
        a == b or (a == 1 and axis not in spans) for axis, (a, b) in enumerate(zip(shape, out)))


def _remap(field: Field, move) -> Field:
    """Applies `move(span) -> Span | GLOBAL` to every span of `field`."""
    if field is None:
        return None
    return tuple(s if s == GLOBAL else move(s) for s in field)


def _to_axis(mapping: dict[int, int]):
    """A move that renumbers axes by `mapping`; an axis not in it is gone: GLOBAL."""
    return lambda s: dataclasses.replace(s, axis=mapping[s.axis]) if s.axis in mapping \
        else GLOBAL


def union(fields: list[Field]) -> Field:
    """The field of a value computed elementwise from values with these fields: per
    dimension the hull of the receptive fields of element 0."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    out = []
    for spans in zip(*fields):
        if any(s == GLOBAL for s in spans) or len({s.axis for s in spans}) > 1:
            out.append(GLOBAL)
            continue
        low = min(s.center - (s.size - 1) / 2 for s in spans)
        high = max(s.center + (s.size - 1) / 2 for s in spans)
        out.append(Span(spans[0].axis, high - low + 1, max(s.jump for s in spans),
                         (low + high) / 2))
    return tuple(out)


def _window(span: Span, k: int, stride: int, low: int, dilation: int, base: int) -> Span:
    """A window of k taps, dilation `dilation`, over the input dilated by `base`, padded by
    `low` before it, moving by `stride`: the lecture recursion r + (k-1)*d*j, j*s, extended
    to transposed convolutions (base > 1) by counting the real input pixels a window covers
    (the most over output positions: their fields differ in size there)."""
    if base == 1:
        reach = Fraction((k - 1) * dilation)
        first = Fraction((k - 1) * dilation, 2) - low
        return Span(span.axis, span.size + reach * span.jump, span.jump * stride,
                     span.center + first * span.jump)
    reach, first = Fraction(0), None
    for o in range(base):  # the pattern of real pixels under the window repeats every `base`
        hits = [u // base for u in (o * stride - low + t * dilation for t in range(k))
                if u % base == 0]
        if hits:
            reach = max(reach, Fraction(max(hits) - min(hits)))
            if o == 0:
                first = Fraction(max(hits) + min(hits), 2)
    if first is None:
        first = Fraction((k - 1) * dilation - 2 * low, 2 * base)
    return Span(span.axis, span.size + reach * span.jump,
                 span.jump * Fraction(stride, base), span.center + first * span.jump)


def _conv_rule(eqn, fields):
    lhs, rhs = fields[0], fields[1]
    if rhs is not None:  # a kernel computed from the image: beyond this analysis
        return all_global(fields)
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    kernel = eqn.invars[1].aval.shape

    def move(s: Span):
        if s.axis not in lhs_spec[2:]:
            return GLOBAL  # the batch or feature axis ran along the image: contracted
        i = list(lhs_spec[2:]).index(s.axis)
        moved = _window(s, kernel[rhs_spec[2 + i]], p["window_strides"][i], p["padding"][i][0],
                        p["rhs_dilation"][i], p["lhs_dilation"][i])
        return dataclasses.replace(moved, axis=out_spec[2 + i])
    return _remap(lhs, move)


def _reduce_window_rule(eqn, fields):
    p = eqn.params
    n = len(eqn.outvars)

    def move(s: Span):
        a = s.axis
        return _window(s, p["window_dimensions"][a], p["window_strides"][a], p["padding"][a][0],
                       p["window_dilation"][a], p["base_dilation"][a])
    return [_remap(union(fields[:n] if eqn.primitive.name == "reduce_window" else fields[:1]),
                   move)] * n


def _reduce_rule(eqn, fields):
    axes = set(eqn.params["axes"] if "axes" in eqn.params else eqn.params["dimensions"])
    keep = [a for a in range(len(eqn.invars[0].aval.shape)) if a not in axes]
    return [_remap(fields[0], _to_axis({a: i for i, a in enumerate(keep)}))] * len(eqn.outvars)


def _dot_rule(eqn, fields):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs_rank, rhs_rank = (len(v.aval.shape) for v in eqn.invars[:2])
    lfree = [a for a in range(lhs_rank) if a not in lc and a not in lb]
    rfree = [a for a in range(rhs_rank) if a not in rc and a not in rb]
    lmap = {a: i for i, a in enumerate(lb)} | {a: len(lb) + i for i, a in enumerate(lfree)}
    rmap = {a: i for i, a in enumerate(rb)} | {
        a: len(lb) + len(lfree) + i for i, a in enumerate(rfree)}
    return union([_remap(fields[0], _to_axis(lmap)), _remap(fields[1], _to_axis(rmap))])


def _broadcast_rule(eqn, fields):
    return _remap(fields[0], _to_axis(dict(enumerate(eqn.params["broadcast_dimensions"]))))


def _transpose_rule(eqn, fields):
    return _remap(fields[0], _to_axis({a: i for i, a in enumerate(eqn.params["permutation"])}))


def _squeeze_rule(eqn, fields):
    gone = set(eqn.params["dimensions"])
    keep = [a for a in range(len(eqn.invars[0].aval.shape)) if a not in gone]
    return _remap(fields[0], _to_axis({a: i for i, a in enumerate(keep)}))


def _expand_dims_rule(eqn, fields):
    rank = len(eqn.outvars[0].aval.shape)
    new = set(d % rank for d in eqn.params["dimensions"])
    kept = [i for i in range(rank) if i not in new]
    return _remap(fields[0], _to_axis(dict(enumerate(kept))))


def _reshape_rule(eqn, fields):
    """Maps axes through groups of equal size; a spatial axis merged with inner axes (pixel
    shuffle) keeps its RF at a finer jump, one split into outer x inner (space to depth) grows
    its RF on the outer axis; a spatial axis merged behind another (flatten) is global."""
    src, dst = tuple(eqn.invars[0].aval.shape), tuple(eqn.outvars[0].aval.shape)
    groups = _reshape_groups(src, dst)
    where = {a: (gi, gj) for gi, gj in groups for a in gi}

    def move(s: Span):
        gi, gj = where[s.axis]
        spatial = [a for a in gi if any(isinstance(t, Span) and t.axis == a for t in fields[0])]
        if not gj or len(spatial) > 1 or math.prod(src[a] for a in gi[:gi.index(s.axis)]) != 1:
            return GLOBAL
        outer = next((b for b in gj if dst[b] > 1), gj[0])
        q = Fraction(math.prod(dst[b] for b in gj[gj.index(outer) + 1:]),
                     math.prod(src[a] for a in gi[gi.index(s.axis) + 1:]))
        grow = max(q - 1, Fraction(0))
        return Span(outer, s.size + grow * s.jump, s.jump * q, s.center + grow / 2 * s.jump)
    return _remap(fields[0], move)


def _reshape_groups(src: tuple, dst: tuple) -> list[tuple[list[int], list[int]]]:
    """Splits a reshape into (source axes, destination axes) groups of equal size."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        if i < len(src) and src[i] == 1 and (j == len(dst) or dst[j] != 1):
            groups.append(([i], []))
            i += 1
        elif j < len(dst) and dst[j] == 1 and (i == len(src) or src[i] != 1):
            groups.append(([], [j]))
            j += 1
        else:
            gi, gj, pi, pj = [i], [j], src[i], dst[j]
            i, j = i + 1, j + 1
            while pi != pj:
                if pi < pj:
                    gi.append(i)
                    pi *= src[i]
                    i += 1
                else:
                    gj.append(j)
                    pj *= dst[j]
                    j += 1
            groups.append((gi, gj))
    return groups


def _concatenate_rule(eqn, fields):
    axis = eqn.params["dimension"]
    joined = union(fields)
    return _remap(joined, lambda s: GLOBAL if s.axis == axis else s)


def _stack_rule(eqn, fields):
    """A new axis at `axis` indexes the inputs, as concatenation does: their union, each axis
    from `axis` on moved one further."""
    axis, rank = eqn.params["axis"], len(eqn.invars[0].aval.shape)
    return _remap(union(fields), _to_axis({a: a + (a >= axis) for a in range(rank)}))


def _pad_rule(eqn, fields):
    config = eqn.params["padding_config"]

    def move(s: Span):
        low, _, interior = config[s.axis]
        jump = s.jump / (interior + 1)
        return dataclasses.replace(s, jump=jump, center=s.center - low * jump)
    return union([_remap(fields[0], move), fields[1]])


def _slice_rule(eqn, fields):
    start = eqn.params["start_indices"]
    strides = eqn.params["strides"] or (1,) * len(start)
    return _remap(fields[0], lambda s: dataclasses.replace(
        s, center=s.center + start[s.axis] * s.jump, jump=s.jump * strides[s.axis]))


def _split_rule(eqn, fields):
    axis, outs, offset = eqn.params["axis"], [], 0
    for var in eqn.outvars:
        outs.append(_remap(fields[0], lambda s, o=offset: s if s.axis != axis else
                           dataclasses.replace(s, center=s.center + o * s.jump)))
        offset += var.aval.shape[axis]
    return outs


def _cumulative_rule(eqn, fields):
    axis = eqn.params["axis"]
    return _remap(fields[0], lambda s: GLOBAL if s.axis == axis else s)


_RULES = {
    "conv_general_dilated": _conv_rule,
    "dot_general": _dot_rule,
    "broadcast_in_dim": _broadcast_rule,
    "transpose": _transpose_rule,
    "squeeze": _squeeze_rule,
    "expand_dims": _expand_dims_rule,
    "reshape": _reshape_rule,
    "concatenate": _concatenate_rule,
    "stack": _stack_rule,
    "pad": _pad_rule,
    "slice": _slice_rule,
    "split": _split_rule,
    "dynamic_slice": lambda eqn, fields: union(fields),
    **{name: _reduce_rule for name in REDUCE},
    **{name: _reduce_window_rule for name in REDUCE_WINDOW},
    **{name: _cumulative_rule for name in ("cumsum", "cumprod", "cummax", "cummin",
                                           "cumlogsumexp")},
}
