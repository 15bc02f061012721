"""The architecture sheet: per layer output shape, parameters, FLOPs, receptive field and
effective stride of a network, plus totals. `launch.py summary` prints it (analysis/summary_cli.py).

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

import dataclasses
import math
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from analysis import jaxpr_walk
from analysis.jaxpr_walk import Call, Walk
from analysis.receptive_field import GLOBAL, Span
from errors import UserError
from models import conv_lowering, registry

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
    # input coordinate (pixel index) of the centre of output position 0's receptive field;
    # position i's is field_center + i * stride
    field_center: tuple[Fraction | str, ...] | None = None

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
    an (H, W) input takes the spec's channels. A 1-D network's input is (T, C) (or (T)), and
    its receptive fields are in samples; an autoregressive one (output "sample_logits") reads
    (1, T) int codes."""
    try:
        spec = registry.spec(name)
    except registry.UnknownModelError as err:
        raise UserError(str(err)) from None
    input_shape = tuple(spec.input_shape if input_shape is None else input_shape)
    if len(input_shape) == len(spec.input_shape) - 1:  # (H, W) or (T): the spec's channels
        input_shape += (spec.input_shape[-1],)
    if spec.num_classes is None and num_classes is not None:
        raise UserError(f"{spec.name} outputs an {spec.output}, not classes: drop --num-classes")
    num_classes = spec.num_classes if num_classes is None else num_classes
    if len(input_shape) != len(spec.input_shape) or min(input_shape) < 1:
        layout = "T x C" if len(spec.input_shape) == 2 else "H x W x C"
        raise UserError(f"input shape {input_shape} is not {layout} with positive sizes")
    if num_classes is not None and num_classes < 1:
        raise UserError(f"--num-classes must be at least 1, got {num_classes}")
    classes = {} if num_classes is None else {"num_classes": num_classes}
    try:
        model = nnx.eval_shape(lambda: registry.create(
            spec.name, in_channels=input_shape[-1], **classes))
    except (TypeError, ValueError) as err:
        for_classes = "" if num_classes is None else f" and {num_classes} classes"
        raise UserError(f"cannot build {spec.name} for a {_hwc(input_shape)} input"
                        f"{for_classes}: {_first_line(err)}") from None
    return summarize_module(model, input_shape, name=spec.name, num_classes=num_classes,
                            check_xla=check_xla, codes=spec.output == "sample_logits")


def summarize_module(model: nnx.Module, input_shape: tuple[int, int, int], *,
                     name: str = "model", num_classes: int | None = None,
                     check_xla: bool = True, codes: bool = False) -> Sheet:
    """The sheet of any NNX module applied to one (H, W, C) float32 image, or one (T, C)
    signal; with `codes`, to (1, T) int32 codes (input_shape (T, 1)).

    `model` may hold real arrays or abstract ones (`nnx.eval_shape`); nothing is computed.
    With `check_xla`, the forward pass is also compiled (twice: with and without fusion) for
    XLA's FLOP counts of the optimized program; the unoptimized program's count needs no
    compilation and is always taken.
    """
    model = nnx.view(model, deterministic=True, use_running_average=True,
                     raise_if_not_found=False)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    image = (jax.ShapeDtypeStruct((1, input_shape[0]), jnp.int32) if codes
             else jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    args = (_abstract(params), _abstract(rest), image)

    def forward(params, rest, x):
        return nnx.merge(graphdef, params, rest)(x)

    def loss(params, rest, x):
        return sum(jnp.sum(y) for y in jax.tree.leaves(forward(params, rest, x)))

    # The network, not one backend's lowering of it: the CPU's banded matmul multiplies the
    # band's zeros too and reads whole rows (models/conv_lowering.py), on the GPU XLA's
    # convolution is kept; traced as convolutions, every backend gets the same sheet.
    with conv_lowering.forced("xla"):
        calls, walk, out_avals = _trace_forward(graphdef, args, name, input_shape)
        backward = Walk(0)  # the gradient w.r.t. the parameters only, as training takes it
        grad = jax.make_jaxpr(jax.value_and_grad(loss))(*args)
        backward.run(grad.jaxpr, [None] * len(grad.jaxpr.invars), layer=None,
                     fields_wanted=False)
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
    calls: list[Call] = []

    def recorded_forward(params, rest, x):
        module = nnx.merge(graphdef, params, rest)
        with jaxpr_walk.record_leaf_calls(module, calls):
            return module(x)

    try:
        closed = jax.make_jaxpr(recorded_forward)(*args)
    except (TypeError, ValueError) as err:
        raise UserError(f"{name} cannot run on a {_hwc(input_shape)} input: "
                        f"{_first_line(err)}") from None
    # The image's H and W axes (1 and 2), a signal's T axis (1), are where receptive fields
    # start: size 1, jump 1.
    image = tuple(Span(axis=1 + d, size=Fraction(1), jump=Fraction(1), center=Fraction(0))
                  for d in range(len(input_shape) - 1))
    fields = [None] * len(jax.tree.leaves(args[:2])) + [image]  # weights: no dependence
    walk = Walk(len(calls))
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


def _layers(calls: list[Call], walk: "Walk") -> list[Layer]:
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
                s if s == GLOBAL else s.jump for s in field),
            field_center=None if field is None else tuple(
                s if s == GLOBAL else s.center for s in field)))
    return layers


