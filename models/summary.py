"""The architecture sheet: per layer output shape, parameters, FLOPs, receptive field and
effective stride of a network, plus totals. `launch.py summary` prints it (models/summary_cli.py).

How it is measured. Nothing is computed on real arrays: the model is built abstractly
(`nnx.eval_shape`) and its forward pass at batch 1 is traced once to a jaxpr, in inference
mode (BatchNorm on running statistics, no dropout).
- Layers: while tracing, `__call__` of every *leaf* module (an `nnx.Module` with no submodules:
  nnx.Conv, nnx.Linear, nnx.BatchNorm, layers.Pool, ...) is wrapped: its operations run under a
  named scope and its output passes through an identity marker primitive, so the jaxpr says
  which equations belong to which call and which variable is the call's output. A row is one
  call, named by the module's attribute path (a module called twice gets rows `name#1`, `name#2`,
  its parameters on the first).
- FLOPs: counted per jaxpr equation with the conventions of XLA's `HloCostAnalysis`: a
  multiply-add is 2 FLOPs; a convolution counts only the taps that land on real input (taps on
  zero padding or between dilated input pixels are skipped); elementwise ops 1 per output
  element; transcendentals (exp, tanh, rsqrt, ...) 0, XLA reports them apart; reductions
  (input - output) elements; work on constants only, or whose result is unused, 0 (XLA folds or
  drops it). The total equals XLA's cost analysis of the unoptimized forward
  (`jit(f).lower(...).cost_analysis()`) and that of the compiled one with the fusion pass off
  (`.compile({"xla_disable_hlo_passes": "fusion"})`, every other optimization on), within 1%
  for every registered net. The default compiled count is the same for most nets but higher
  for deep residual stacks (+2% ResNet-101, +5% ResNet-110 on CPU): fusion recomputes the
  residual stream's cheap elementwise chain (norm, add, ReLU) inside each consumer instead of
  reading it back, so that program does more arithmetic than the network asks for; the sheet
  reports all three counts and notes such a gap. Work between layers (activation functions,
  residual adds) is reported on its own line. `flops_forward_dense` also counts the padding
  taps, as the usual hand count (2*K*K*Cin*Cout*H*W) does.
- Forward+backward: the same count on the jaxpr of `value_and_grad` of the summed output with
  respect to the parameters (no gradient for the input image). It comes out near 3x forward:
  the backward pass of a conv or dense layer is two products of the forward's size (gradient
  for the input and for the weights), the usual "training = 3x forward" rule (e.g. Kaplan et
  al. 2020, Scaling Laws, sec. 2.1: 6N FLOPs per token for training vs 2N for the forward);
  the first layer needs no input gradient, so the ratio is a little under 3.
- Receptive field (RF) and effective stride (jump), in input pixels, per spatial dimension: each
  jaxpr variable carries, for H and W, (size, jump, centre of element 0's RF). A window op (conv,
  pooling) of kernel k, stride s, dilation d gives size + (k-1)*d*jump, jump*s, the lecture's
  recursion (a KxK stride-1 conv then a PxP pool: P+K-1); elementwise ops and concatenation take
  the union (hull) of their inputs' RFs, which covers branches (residual, Inception, DenseNet);
  reshapes, transposes, slices and padding move them; a reduction or contraction over a
  spatial axis (flatten + dense, global pooling) makes the RF "global", the whole input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from fractions import Fraction
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.extend import core as jcore

from errors import UserError
from models import registry

GLOBAL = "global"  # a value that depends on the whole input along a spatial dimension
_N_SPATIAL = 2  # inputs are (batch, H, W, C)


# ------------------------------------------------------------------------------------------
# The result


@dataclasses.dataclass(frozen=True)
class Layer:
    """One call of a leaf module in the forward pass.

    `receptive_field` and `stride` hold one entry per spatial dimension (H, W): a size or jump
    in input pixels, or GLOBAL; None for an output that does not depend on the input.
    """
    name: str                      # attribute path; '#k' for the k-th call of a reused module
    type: str                      # class name
    kernel: str                    # the call's first window op: "5x5/1", "3x3/2 d2", or ""
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int                    # trainable; counted on a module's first call only
    flops: int
    receptive_field: tuple[Fraction | str, ...] | None
    stride: tuple[Fraction | str, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "kernel": self.kernel,
                "output_shape": list(self.output_shape), "params": self.params,
                "flops": self.flops, "receptive_field": _json_pair(self.receptive_field),
                "stride": _json_pair(self.stride)}


@dataclasses.dataclass(frozen=True)
class Sheet:
    model: str
    input_shape: tuple[int, int, int]     # (H, W, C)
    layers: list[Layer]
    params: int
    flops_forward: int                    # XLA's convention (see the module docstring)
    flops_between_layers: int             # the part of flops_forward outside any layer
    flops_forward_dense: int              # the same, counting the taps on zero padding too
    flops_forward_backward: int           # value_and_grad w.r.t. the parameters
    xla_flops: float | None               # XLA's cost analysis of the compiled forward
    xla_flops_unfused: float | None       # ... compiled with the fusion pass off
    xla_flops_unoptimized: float | None   # ... of the forward's HLO before optimization
    activation_bytes: int                 # the layer outputs (new arrays only), batch 1
    output_shape: tuple[int, ...]
    notes: tuple[str, ...] = ()
    num_classes: int | None = None        # as registered or asked for; None: unknown

    def to_json(self) -> dict[str, Any]:
        out = {"model": self.model, "input_shape": list(self.input_shape),
               "num_classes": self.num_classes, "batch_size": 1, "mode": "inference",
               "params": self.params, "flops_forward": self.flops_forward,
               "flops_forward_backward": self.flops_forward_backward,
               "flops_between_layers": self.flops_between_layers,
               "flops_forward_dense": self.flops_forward_dense, "xla_flops": self.xla_flops,
               "xla_flops_unfused": self.xla_flops_unfused,
               "xla_flops_unoptimized": self.xla_flops_unoptimized,
               "activation_bytes": self.activation_bytes,
               "output_shape": list(self.output_shape),
               "layers": [layer.to_json() for layer in self.layers],
               "notes": list(self.notes)}
        return out


def _json_number(x: Fraction | str) -> int | float | str:
    if isinstance(x, str):
        return x
    return int(x) if x.denominator == 1 else float(x)


def _json_pair(pair: tuple | None) -> Any:
    """(5, 5) -> 5; (5, 7) -> [5, 7]; GLOBAL when global along every dimension."""
    if pair is None:
        return None
    values = [_json_number(v) for v in pair]
    return values[0] if all(v == values[0] for v in values) else values


# ------------------------------------------------------------------------------------------
# Entry points


def summarize(name: str, input_shape: tuple[int, ...] | None = None,
              num_classes: int | None = None, *, check_xla: bool = True) -> Sheet:
    """The sheet of registered network `name`; input and classes default to its spec's, and
    an (H, W) input takes the spec's channels."""
    try:
        spec = registry.spec(name)
    except registry.UnknownModelError as err:
        raise UserError(str(err)) from None
    input_shape = tuple(spec.input_shape if input_shape is None else input_shape)
    if len(input_shape) == 2:
        input_shape += (spec.input_shape[2],)
    if spec.num_classes is None and num_classes is not None:
        raise UserError(f"{spec.name} outputs an {spec.output}, not classes: drop --num-classes")
    num_classes = spec.num_classes if num_classes is None else num_classes
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise UserError(f"input shape {input_shape} is not H x W x C with positive sizes")
    if num_classes is not None and num_classes < 1:
        raise UserError(f"--num-classes must be at least 1, got {num_classes}")
    classes = {} if num_classes is None else {"num_classes": num_classes}
    try:
        model = nnx.eval_shape(lambda: registry.create(
            spec.name, in_channels=input_shape[2], **classes))
    except (TypeError, ValueError) as err:
        for_classes = "" if num_classes is None else f" and {num_classes} classes"
        raise UserError(f"cannot build {spec.name} for a {_hwc(input_shape)} input"
                        f"{for_classes}: {_first_line(err)}") from None
    return summarize_module(model, input_shape, name=spec.name, num_classes=num_classes,
                            check_xla=check_xla)


def summarize_module(model: nnx.Module, input_shape: tuple[int, int, int], *,
                     name: str = "model", num_classes: int | None = None,
                     check_xla: bool = True) -> Sheet:
    """The sheet of any NNX module applied to one (H, W, C) float32 image.

    `model` may hold real arrays or abstract ones (`nnx.eval_shape`); nothing is computed.
    With `check_xla`, the forward pass is also compiled (twice: with and without fusion) for
    XLA's FLOP counts of the optimized program; the unoptimized program's count needs no
    compilation and is always taken.
    """
    model = nnx.view(model, deterministic=True, use_running_average=True,
                     raise_if_not_found=False)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    image = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    args = (_abstract(params), _abstract(rest), image)

    def forward(params, rest, x):
        return nnx.merge(graphdef, params, rest)(x)

    def loss(params, rest, x):
        return sum(jnp.sum(y) for y in jax.tree.leaves(forward(params, rest, x)))

    calls, walk, out_avals = _trace_forward(graphdef, args, name, input_shape)
    backward = _Walk(0)  # the gradient w.r.t. the parameters only, as training takes it
    grad = jax.make_jaxpr(jax.value_and_grad(loss))(*args)
    backward.run(grad.jaxpr, [None] * len(grad.jaxpr.invars), layer=None, fields_wanted=False)
    xla = _xla_flops(forward, args, compile=check_xla)

    total = sum(walk.flops) + walk.between
    n_params = sum(math.prod(p.shape) for p in jax.tree.leaves(args[0]))
    layers = _layers(calls, walk)
    notes = list(walk.notes)
    if unused := [layer.name for i, layer in enumerate(layers) if i not in walk.used]:
        names = ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else "")
        notes.append(f"{len(unused)} layers ({names}) feed nothing the forward pass returns "
                     "(an auxiliary head sown for training, say): their FLOPs are 0 here, as "
                     "XLA drops them")
    if unlisted := n_params - sum(call.params for call in calls):
        notes.append(f"{unlisted:,} parameters belong to modules the forward pass does not call "
                     "as layers (e.g. an auxiliary head used only in training)")
    notes += _xla_notes(total, xla)
    return Sheet(
        model=name, input_shape=tuple(input_shape), num_classes=num_classes,
        layers=layers,
        params=n_params,
        flops_forward=total, flops_between_layers=walk.between,
        flops_forward_dense=walk.dense_flops,
        flops_forward_backward=backward.between,
        xla_flops=xla["compiled"], xla_flops_unfused=xla["unfused"],
        xla_flops_unoptimized=xla["unoptimized"],
        activation_bytes=sum(c.output_bytes for c in calls),
        output_shape=tuple(out_avals[0].shape[1:]) if out_avals else (),
        notes=tuple(notes))


def _trace_forward(graphdef, args, name, input_shape):
    """Traces the forward with the leaf calls recorded; walks it for FLOPs and fields."""
    calls: list[_Call] = []

    def recorded_forward(params, rest, x):
        module = nnx.merge(graphdef, params, rest)
        with _record_leaf_calls(module, calls):
            return module(x)

    try:
        closed = jax.make_jaxpr(recorded_forward)(*args)
    except (TypeError, ValueError) as err:
        raise UserError(f"{name} cannot run on a {_hwc(input_shape)} input: "
                        f"{_first_line(err)}") from None
    # The image's H and W axes (1 and 2) are where receptive fields start: size 1, jump 1.
    image = tuple(_Span(axis=1 + d, size=Fraction(1), jump=Fraction(1), center=Fraction(0))
                  for d in range(_N_SPATIAL))
    fields = [None] * len(jax.tree.leaves(args[:2])) + [image]  # weights: no dependence
    walk = _Walk(len(calls))
    walk.run(closed.jaxpr, fields, layer=None)
    return calls, walk, closed.out_avals


def _hwc(shape) -> str:
    return "x".join(str(s) for s in shape)


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _abstract(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _xla_flops(forward, args, compile: bool) -> dict[str, float | None]:
    """XLA's cost analysis of the forward, as compiled, compiled without fusion, and before
    optimization (the compiled ones None unless `compile`)."""
    lowered = jax.jit(forward).lower(*args)
    counts = {"compiled": None, "unfused": None,
              "unoptimized": _cost_flops(lowered.cost_analysis())}
    if compile:
        counts["compiled"] = _cost_flops(lowered.compile().cost_analysis())
        unfused = lowered.compile(compiler_options={"xla_disable_hlo_passes": "fusion"})
        counts["unfused"] = _cost_flops(unfused.cost_analysis())
    return counts


def _xla_notes(total: int, xla: dict[str, float | None]) -> list[str]:
    """Says where XLA's compiled counts are more than 2% off the sheet's, and why."""
    compiled, unfused = xla["compiled"], xla["unfused"]
    if unfused and abs(total - unfused) > 0.02 * unfused:
        return [f"XLA's count of the compiled forward without fusion is "
                f"{100 * (unfused / total - 1):+.1f}% off this one ({unfused:,.0f}): an "
                "operation this sheet counts differently from XLA"]
    if compiled and abs(total - compiled) > 0.02 * compiled:
        return [f"XLA's count of the compiled forward is {100 * (compiled / total - 1):+.1f}% "
                f"off this one ({compiled:,.0f}) but agrees without fusion: fusion recomputes "
                "cheap elementwise work (norm, add, activation) in each consumer"]
    return []


def _cost_flops(cost) -> float | None:
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    return float(cost["flops"]) if cost and "flops" in cost else None


# ------------------------------------------------------------------------------------------
# Recording the leaf modules' calls


@dataclasses.dataclass
class _Call:
    path: str
    module_id: int
    type: str
    params: int
    output_shapes: list[tuple[int, ...]] = dataclasses.field(default_factory=list)
    output_bytes: int = 0


_layer_output_p = jcore.Primitive("summary_layer_output")
_layer_output_p.def_impl(lambda x, *, index: x)
_layer_output_p.def_abstract_eval(lambda x, *, index: x)
_SCOPE = "summary_layer_"
_SCOPE_RE = re.compile(_SCOPE + r"(\d+)")


def _leaf_modules(model: nnx.Module) -> dict[int, tuple[str, nnx.Module]]:
    """id -> (attribute path, module) of every module with no submodules."""
    leaves = {}
    for path, module in nnx.iter_modules(model):
        if all(sub is module for _, sub in nnx.iter_modules(module)):
            leaves[id(module)] = (".".join(str(p) for p in path) or "(model)", module)
    return leaves


@contextlib.contextmanager
def _record_leaf_calls(model: nnx.Module, calls: list[_Call]) -> Iterator[None]:
    """Wraps `__call__` of the leaf modules' classes while tracing; appends one `_Call` per call.

    The wrapper touches only the instances of `model` (others pass straight through), and the
    outermost wrapper wins when a class and its base are both wrapped.
    """
    leaves = _leaf_modules(model)
    seen: set[int] = set()
    depth = [0]

    def wrap(call):
        def recorded(self, *args, **kwargs):
            if id(self) not in leaves or depth[0]:
                return call(self, *args, **kwargs)
            index = len(calls)
            path, _ = leaves[id(self)]
            n_params = 0 if id(self) in seen else sum(
                math.prod(p.shape) for p in jax.tree.leaves(nnx.state(self, nnx.Param)))
            seen.add(id(self))
            record = _Call(path, id(self), type(self).__name__, n_params)
            calls.append(record)
            inputs = {id(a) for a in jax.tree.leaves((args, kwargs))}
            depth[0] += 1
            try:
                with jax.named_scope(f"{_SCOPE}{index}"):
                    out = call(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            arrays = [y for y in jax.tree.leaves(out) if isinstance(y, jax.Array)]
            record.output_shapes = [tuple(y.shape) for y in arrays]
            record.output_bytes = sum(y.size * y.dtype.itemsize for y in arrays
                                      if id(y) not in inputs)  # an identity adds no memory
            return jax.tree.map(
                lambda y: _layer_output_p.bind(y, index=index) if isinstance(y, jax.Array) else y,
                out)
        return recorded

    classes = {type(module) for _, module in leaves.values()
               if any("__call__" in vars(k) for k in type(module).__mro__)}
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


def _layers(calls: list[_Call], walk: "_Walk") -> list[Layer]:
    uses: dict[int, int] = {}
    for call in calls:
        uses[call.module_id] = uses.get(call.module_id, 0) + 1
    nth: dict[int, int] = {}
    layers = []
    for index, call in enumerate(calls):
        name = call.path
        if uses[call.module_id] > 1:
            nth[call.module_id] = nth.get(call.module_id, 0) + 1
            name = f"{name}#{nth[call.module_id]}"
        field = walk.outputs.get(index)
        shape = call.output_shapes[0][1:] if call.output_shapes else ()
        layers.append(Layer(
            name=name, type=call.type, kernel=walk.kernels.get(index, ""), output_shape=shape,
            params=call.params, flops=walk.flops[index],
            receptive_field=None if field is None else tuple(
                s if s == GLOBAL else s.size for s in field),
            stride=None if field is None else tuple(
                s if s == GLOBAL else s.jump for s in field)))
    return layers


# ------------------------------------------------------------------------------------------
# Walking the jaxpr: FLOPs per equation, receptive fields per variable


@dataclasses.dataclass(frozen=True)
class _Span:
    """How one spatial dimension of the input maps onto one axis of a value."""
    axis: int          # the value's axis that runs along this input dimension
    size: Fraction     # receptive field: input pixels one element depends on
    jump: Fraction     # effective stride: input pixels between neighbours along `axis`
    center: Fraction   # input coordinate of the centre of element 0's receptive field


# A field: one _Span or GLOBAL per input spatial dimension, or None for a value that does not
# depend on the input image (parameters, constants).
Field = tuple | None


class _Walk:
    """Evaluates a jaxpr abstractly: FLOPs (per layer scope) and fields (per variable)."""

    def __init__(self, n_layers: int):
        self.flops = [0] * n_layers
        self.between = 0                     # FLOPs outside any layer's scope
        self.dense_flops = 0
        self.outputs: dict[int, Field] = {}  # layer index -> field of its output
        self.used: set[int] = set()          # layers whose output the result depends on
        self.kernels: dict[int, str] = {}
        self.notes: list[str] = []

    def run(self, jaxpr: jcore.Jaxpr, fields: list, *, layer: int | None,
            consts: list[bool] | None = None, fields_wanted: bool = True,
            count: bool = True) -> list:
        """Returns the fields of `jaxpr.outvars`; `consts[i]`: invar i is a known constant;
        FLOPs are added for the live equations when `count`."""
        env: dict[Any, tuple[Field, bool]] = {}
        for var in jaxpr.constvars:
            env[var] = (None, True)
        for i, var in enumerate(jaxpr.invars):
            env[var] = (fields[i], bool(consts and consts[i]))

        def read(atom):
            return (None, True) if isinstance(atom, jcore.Literal) else env[atom]

        live = _live_eqns(jaxpr)
        for eqn in jaxpr.eqns:
            scope = _scope_of(eqn)
            current = layer if scope is None else scope
            in_fields = [read(a)[0] for a in eqn.invars]
            const = all(read(a)[1] for a in eqn.invars)
            counted = count and not const and id(eqn) in live
            name = eqn.primitive.name
            if eqn.primitive is _layer_output_p:
                self.outputs.setdefault(eqn.params["index"], in_fields[0])
                if count and id(eqn) in live:
                    self.used.add(eqn.params["index"])
                out_fields = in_fields
            elif name not in _NOT_CALLS and _subjaxprs(eqn):
                out_fields = self._run_nested(eqn, in_fields, [read(a)[1] for a in eqn.invars],
                                              current, fields_wanted, counted)
            else:
                if counted:
                    self._add_flops(current, _flops(eqn))
                    self.dense_flops += _flops(eqn, dense=True)
                if current is not None and current not in self.kernels and (
                        k := _kernel(eqn)):
                    self.kernels[current] = k
                out_fields = (_fields(eqn, in_fields, self.notes) if fields_wanted
                              else [None] * len(eqn.outvars))
            for var, field in zip(eqn.outvars, out_fields):
                env[var] = (field, const)
        return [read(v)[0] for v in jaxpr.outvars]

    def _add_flops(self, layer: int | None, n: int) -> None:
        if layer is None or layer >= len(self.flops):
            self.between += n
        else:
            self.flops[layer] += n

    def _run_nested(self, eqn, in_fields, in_consts, layer, fields_wanted, count) -> list:
        name, subs = eqn.primitive.name, _subjaxprs(eqn)
        if name == "cond":  # every branch is counted: an upper bound (rare in a forward pass)
            outs = [self.run(b, in_fields[1:], layer=layer, consts=in_consts[1:],
                             fields_wanted=fields_wanted, count=count) for b in subs]
            return [_union(list(fs)) for fs in zip(*outs)]
        if len(subs) == 1 and len(subs[0].invars) == len(eqn.invars) and name != "scan":
            # jit, custom_jvp_call, custom_vjp_call, checkpoint, ...: the inner jaxpr inline
            return self.run(subs[0], in_fields, layer=layer, consts=in_consts,
                            fields_wanted=fields_wanted, count=count)
        # scan, while and other loops: the body counted once per iteration where known (XLA
        # counts a while body once), receptive fields not followed.
        for sub in subs if count else ():
            body = _Walk(0)
            body.run(sub, [None] * len(sub.invars), layer=None, fields_wanted=False)
            self._add_flops(layer, eqn.params.get("length", 1) * body.between)
            self.dense_flops += eqn.params.get("length", 1) * body.dense_flops
        depends = any(f is not None for f in in_fields)
        if depends and fields_wanted:
            self._note(f"receptive fields are not followed through `{name}`: reported as global")
        return [(GLOBAL,) * _N_SPATIAL if depends else None for _ in eqn.outvars]

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _unclose(j):
    return j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j


def _subjaxprs(eqn) -> list[jcore.Jaxpr]:
    return [_unclose(j) for j in jcore.jaxprs_in_params(eqn.params)]


def _scope_of(eqn) -> int | None:
    found = _SCOPE_RE.findall(str(eqn.source_info.name_stack))
    return int(found[-1]) if found else None


def _live_eqns(jaxpr: jcore.Jaxpr) -> set[int]:
    """ids of the equations that the outputs depend on: XLA drops the others, and so does
    the FLOP count (a layer whose output is only sown for training costs nothing here)."""
    live = {v for v in jaxpr.outvars if not isinstance(v, jcore.Literal)}
    kept = set()
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            kept.add(id(eqn))
            live.update(a for a in eqn.invars if not isinstance(a, jcore.Literal))
    return kept


# --- FLOPs -------------------------------------------------------------------------------

_FREE = {  # data movement and bookkeeping: XLA counts no FLOPs for them
    "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "slice",
    "dynamic_slice", "dynamic_update_slice", "concatenate", "pad", "rev", "iota", "copy",
    "copy_p", "gather", "scatter", "split", "sharding_constraint", "device_put",
    "stop_gradient", "random_bits", "random_seed", "random_wrap", "random_unwrap",
    "random_fold_in", "random_split", "threefry2x32", "bitcast_convert_type", "sort",
    "optimization_barrier", "mesh_cast", "reshard", "empty", "zeros_like",
}
_TRANSCENDENTAL = {  # XLA reports these as 'transcendentals', not 'flops'
    "exp", "exp2", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "asin", "acos",
    "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt",
    "erf", "erfc", "erf_inv", "lgamma", "digamma", "igamma", "igammac", "pow",
    "bessel_i0e", "bessel_i1e", "polygamma", "zeta", "random_gamma_grad",
}
_REDUCE = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
           "reduce_xor", "argmax", "argmin", "reduce"}
_REDUCE_WINDOW = {"reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window"}
# Primitives whose jaxpr parameter is a per-element computation, not a call to inline.
_NOT_CALLS = _REDUCE_WINDOW | {"reduce", "scatter", "scatter_add", "scatter_mul", "scatter_min",
                               "scatter_max", "select_and_scatter", "sort"}


def _size(var) -> int:
    return math.prod(var.aval.shape)


def _flops(eqn, *, dense: bool = False) -> int:
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
    if name in _REDUCE:
        return _size(eqn.invars[0]) - _size(eqn.outvars[0])
    if name in _REDUCE_WINDOW:
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


def _kernel(eqn) -> str:
    """'5x5/1' for a conv or pooling window over the spatial axes (the dims wider than 1)."""
    p = eqn.params
    if eqn.primitive.name == "conv_general_dilated":
        _, rhs_spec, _ = p["dimension_numbers"]
        shape = eqn.invars[1].aval.shape
        window = [shape[a] for a in rhs_spec[2:]]
        strides, dilation = list(p["window_strides"]), list(p["rhs_dilation"])
    elif eqn.primitive.name in _REDUCE_WINDOW:
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


# --- receptive fields --------------------------------------------------------------------


def _fields(eqn, in_fields: list[Field], notes: list[str]) -> list[Field]:
    """The fields of `eqn`'s outputs from its inputs' (see the module docstring)."""
    if all(f is None for f in in_fields):
        return [None] * len(eqn.outvars)
    name = eqn.primitive.name
    rule = _RULES.get(name)
    if rule is not None:
        out = rule(eqn, in_fields)
        return out if isinstance(out, list) else [out]
    in_shapes = [v.aval.shape for v, f in zip(eqn.invars, in_fields) if f is not None]
    if all(tuple(v.aval.shape) == tuple(s) for v in eqn.outvars for s in in_shapes):
        return [_union(in_fields)] * len(eqn.outvars)   # elementwise
    note = f"receptive fields are not followed through `{name}`: reported as global"
    if note not in notes:
        notes.append(note)
    return [(GLOBAL,) * _N_SPATIAL] * len(eqn.outvars)


def _remap(field: Field, move) -> Field:
    """Applies `move(span) -> _Span | GLOBAL` to every span of `field`."""
    if field is None:
        return None
    return tuple(s if s == GLOBAL else move(s) for s in field)


def _to_axis(mapping: dict[int, int]):
    """A move that renumbers axes by `mapping`; an axis not in it is gone: GLOBAL."""
    return lambda s: dataclasses.replace(s, axis=mapping[s.axis]) if s.axis in mapping \
        else GLOBAL


def _union(fields: list[Field]) -> Field:
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
        out.append(_Span(spans[0].axis, high - low + 1, max(s.jump for s in spans),
                         (low + high) / 2))
    return tuple(out)


def _window(span: _Span, k: int, stride: int, low: int, dilation: int, base: int) -> _Span:
    """A window of k taps, dilation `dilation`, over the input dilated by `base`, padded by
    `low` before it, moving by `stride`: the lecture recursion r + (k-1)*d*j, j*s, extended
    to transposed convolutions (base > 1) by counting the real input pixels a window covers
    (the most over output positions: their fields differ in size there)."""
    if base == 1:
        reach = Fraction((k - 1) * dilation)
        first = Fraction((k - 1) * dilation, 2) - low
        return _Span(span.axis, span.size + reach * span.jump, span.jump * stride,
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
    return _Span(span.axis, span.size + reach * span.jump,
                 span.jump * Fraction(stride, base), span.center + first * span.jump)


def _conv_rule(eqn, fields):
    lhs, rhs = fields[0], fields[1]
    if rhs is not None:  # a kernel computed from the image: beyond this analysis
        return (GLOBAL,) * _N_SPATIAL
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    kernel = eqn.invars[1].aval.shape

    def move(s: _Span):
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

    def move(s: _Span):
        a = s.axis
        return _window(s, p["window_dimensions"][a], p["window_strides"][a], p["padding"][a][0],
                       p["window_dilation"][a], p["base_dilation"][a])
    return [_remap(_union(fields[:n] if eqn.primitive.name == "reduce_window" else fields[:1]),
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
    return _union([_remap(fields[0], _to_axis(lmap)), _remap(fields[1], _to_axis(rmap))])


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

    def move(s: _Span):
        gi, gj = where[s.axis]
        spatial = [a for a in gi if any(isinstance(t, _Span) and t.axis == a for t in fields[0])]
        if not gj or len(spatial) > 1 or math.prod(src[a] for a in gi[:gi.index(s.axis)]) != 1:
            return GLOBAL
        outer = next((b for b in gj if dst[b] > 1), gj[0])
        q = Fraction(math.prod(dst[b] for b in gj[gj.index(outer) + 1:]),
                     math.prod(src[a] for a in gi[gi.index(s.axis) + 1:]))
        grow = max(q - 1, Fraction(0))
        return _Span(outer, s.size + grow * s.jump, s.jump * q, s.center + grow / 2 * s.jump)
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
    joined = _union(fields)
    return _remap(joined, lambda s: GLOBAL if s.axis == axis else s)


def _pad_rule(eqn, fields):
    config = eqn.params["padding_config"]

    def move(s: _Span):
        low, _, interior = config[s.axis]
        jump = s.jump / (interior + 1)
        return dataclasses.replace(s, jump=jump, center=s.center - low * jump)
    return _union([_remap(fields[0], move), fields[1]])


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
    "pad": _pad_rule,
    "slice": _slice_rule,
    "split": _split_rule,
    "dynamic_slice": lambda eqn, fields: _union(fields),
    **{name: _reduce_rule for name in _REDUCE},
    **{name: _reduce_window_rule for name in _REDUCE_WINDOW},
    **{name: _cumulative_rule for name in ("cumsum", "cumprod", "cummax", "cummin",
                                           "cumlogsumexp")},
}
