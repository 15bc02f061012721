"""The jaxpr walk of the architecture sheet: which equations belong to which layer call, and
an abstract evaluation of the forward's jaxpr that adds up FLOPs per layer (analysis/
flop_rules.py) and follows receptive fields per variable (analysis/receptive_field.py).

While tracing, `__call__` of every *leaf* module (an `nnx.Module` with no submodules) is
wrapped: its operations run under a named scope and its output passes through an identity
marker primitive, so the jaxpr says which equations belong to which call and which variable
is the call's output. Equations whose result is unused (or that work on constants only) are
not counted: XLA drops or folds them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from typing import Any, Iterator

import jax
from flax import nnx
from jax.extend import core as jcore

from analysis import flop_rules
from analysis.receptive_field import Field, all_global, output_fields, union


@dataclasses.dataclass
class Call:
    path: str
    module_id: int
    type: str
    params: int
    output_shapes: list[tuple[int, ...]] = dataclasses.field(default_factory=list)
    output_bytes: int = 0


layer_output_p = jcore.Primitive("summary_layer_output")
layer_output_p.def_impl(lambda x, *, index: x)
layer_output_p.def_abstract_eval(lambda x, *, index: x)
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
def record_leaf_calls(model: nnx.Module, calls: list[Call]) -> Iterator[None]:
    """Wraps `__call__` of the leaf modules' classes while tracing; appends one `Call` per call.

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
            record = Call(path, id(self), type(self).__name__, n_params)
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
                lambda y: layer_output_p.bind(y, index=index) if isinstance(y, jax.Array) else y,
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



class Walk:
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
            if eqn.primitive is layer_output_p:
                self.outputs.setdefault(eqn.params["index"], in_fields[0])
                if count and id(eqn) in live:
                    self.used.add(eqn.params["index"])
                out_fields = in_fields
            elif name not in flop_rules.NOT_CALLS and _subjaxprs(eqn):
                out_fields = self._run_nested(eqn, in_fields, [read(a)[1] for a in eqn.invars],
                                              current, fields_wanted, counted)
            else:
                if counted:
                    self._add_flops(current, flop_rules.flops(eqn))
                    self.dense_flops += flop_rules.flops(eqn, dense=True)
                if current is not None and current not in self.kernels and (
                        k := flop_rules.kernel(eqn)):
                    self.kernels[current] = k
                out_fields = (output_fields(eqn, in_fields, self.notes) if fields_wanted
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
            return [union(list(fs)) for fs in zip(*outs)]
        if len(subs) == 1 and len(subs[0].invars) == len(eqn.invars) and name != "scan":
            # jit, custom_jvp_call, custom_vjp_call, checkpoint, ...: the inner jaxpr inline
            return self.run(subs[0], in_fields, layer=layer, consts=in_consts,
                            fields_wanted=fields_wanted, count=count)
        # scan, while and other loops: the body counted once per iteration where known (XLA
        # counts a while body once), receptive fields not followed.
        for sub in subs if count else ():
            body = Walk(0)
            body.run(sub, [None] * len(sub.invars), layer=None, fields_wanted=False)
            self._add_flops(layer, eqn.params.get("length", 1) * body.between)
            self.dense_flops += eqn.params.get("length", 1) * body.dense_flops
        depends = any(f is not None for f in in_fields)
        if depends and fields_wanted:
            self._note(f"receptive fields are not followed through `{name}`: reported as global")
        return [all_global(in_fields) if depends else None for _ in eqn.outvars]

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


