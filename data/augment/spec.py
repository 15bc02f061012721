"""Spec strings -> op calls: `"random_crop(32, pad=4)|flip_lr|normalize(cifar10)"`.

Each `|`-separated item is a Python-call-shaped expression read with `ast` (never evaluated):
numbers, tuples, quoted strings, bare words (taken as names, e.g. a dataset) and simple
arithmetic such as `3/4`. Its arguments are bound to the op's signature and checked here, so a
bad spec fails when the config is validated, with a one-line UserError naming the op.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import operator
from typing import Any

from data.augment import registry
from errors import UserError

_EXAMPLE = "write e.g. 'random_crop(32, pad=4)|flip_lr|normalize(cifar10)'"


@dataclasses.dataclass(frozen=True)
class OpCall:
    """One op of a pipeline with its arguments bound by name (defaults filled in)."""

    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args.items())})"


def parse(spec: str | list[str] | tuple[str, ...] | None) -> list[OpCall]:
    """The ordered op calls of `spec`; '' / 'none' / None / [] mean no augmentation."""
    items = [spec] if spec is None or isinstance(spec, str) else list(spec)
    calls = []
    for item in items:
        if not isinstance(item, str) and item is not None:
            raise UserError(f"augmentation spec item {item!r} is not a string; {_EXAMPLE}")
        if item is None or item.strip().lower() in ("", "none"):
            continue
        calls += [_parse_call(text) for text in item.split("|")]
    return calls


def _parse_call(text: str) -> OpCall:
    text = text.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise UserError(f"cannot read augmentation {text!r}; {_EXAMPLE}") from None
    if isinstance(node, ast.Name):
        name, args, kwargs = node.id, [], {}
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        args = [_literal(a, name) for a in node.args]
        kwargs = {k.arg: _literal(k.value, name) for k in node.keywords}
    else:
        raise UserError(f"cannot read augmentation {text!r}; {_EXAMPLE}")
    return OpCall(name, _bind(registry.get(name), args, kwargs))


def _bind(op: registry.Op, args: list, kwargs: dict) -> dict[str, Any]:
    params = op.parameters()
    try:
        bound = inspect.Signature(params).bind(*args, **kwargs)
    except TypeError as err:
        raise UserError(f"augmentation op {op.name}: {err}; "
                        f"its signature is {signature(op)}") from None
    bound.apply_defaults()
    values = {k: registry.conform(op.name, k, v, _annotation(params, k))
              for k, v in bound.arguments.items()}
    if op.check is not None:
        try:
            op.check(**values)
        except ValueError as err:
            raise UserError(f"augmentation op {op.name}: {err}") from None
    return values


def signature(op: registry.Op | str) -> str:
    """The op as a user writes it, e.g. `random_crop(size, pad=0)`."""
    op = registry.get(op) if isinstance(op, str) else op
    args = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in op.parameters()]
    return f"{op.name}({', '.join(args)})"


def _annotation(params, name):
    return next(p.annotation for p in params if p.name == name)


_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv}


def _literal(node: ast.AST, op: str) -> Any:
    """A constant, tuple, bare name (as a string) or number arithmetic; nothing is evaluated."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e, op) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(_literal(node.operand, op), op)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _number(_literal(node.left, op), op), _number(_literal(node.right, op), op)
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except ZeroDivisionError:
            raise UserError(f"augmentation op {op}: division by zero in an argument") from None
    if isinstance(node, ast.Constant):
        return node.value
    raise UserError(f"augmentation op {op}: cannot read argument {ast.unparse(node)!r}; "
                    "use numbers, tuples or names")


def _number(value: Any, op: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"augmentation op {op}: {value!r} is not a number")
    return value
