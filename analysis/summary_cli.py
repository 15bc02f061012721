"""`launch.py summary MODEL`: the architecture sheet of a registered network (analysis/sheet.py).

    launch.py summary resnet50                      # the paper's input and classes
    launch.py summary lenet5 --input 28x28x1 --num-classes 10 --json
"""

from __future__ import annotations

import argparse
import json
import re
from fractions import Fraction

from errors import UserError
from analysis import sheet as summary

_FOOTER = (
    "FLOPs: a multiply-add counts 2, as in XLA's cost analysis; taps on zero padding are not\n"
    "counted. Forward+backward: the same count on the gradient w.r.t. the parameters (about 3x\n"
    "forward: each conv/dense layer's backward is two products the size of its forward).\n"
    "(between layers): activation functions, residual adds, flatten: ops outside any layer.\n"
    "RF (receptive field) and stride in input pixels, per H and W when they differ; 'global':\n"
    "the layer sees the whole input (after a flatten, a dense layer or global pooling).")


def parse_input(text: str) -> tuple[int, ...]:
    """'224x224x3' -> (224, 224, 3); 'HxW' -> (H, W), the model's channels then fill in C."""
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*(?:x\s*(\d+))?\s*", text, re.IGNORECASE)
    if not match:
        raise UserError(f"--input {text!r} is not HxWxC, e.g. --input 224x224x3")
    shape = tuple(int(g) for g in match.groups() if g is not None)
    if min(shape) < 1:
        raise UserError(f"--input {text!r} has a zero size; H, W and C must be at least 1")
    return shape


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py summary",
        description="Per-layer output shape, parameters, FLOPs, receptive field and effective "
                    "stride of a registered network (list them with `launch.py models`).")
    parser.add_argument("model", help="registered model name, e.g. lenet5 or resnet50")
    parser.add_argument("--input", help="HxWxC or HxW (default: the model's, e.g. 224x224x3)")
    parser.add_argument("--num-classes", type=int, help="output classes (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip compiling the forward pass for XLA's FLOP count (saves up to "
                             "a minute on CPU for the biggest nets)")
    args = parser.parse_args(argv)
    input_shape = None if args.input is None else parse_input(args.input)
    sheet = summary.summarize(args.model, input_shape, args.num_classes,
                              check_xla=not args.no_compile)
    print(json.dumps(sheet.to_json(), indent=2) if args.json else format_sheet(sheet))
    return 0


def format_sheet(sheet: summary.Sheet) -> str:
    """The sheet as an aligned plain-text table with the totals under it."""
    header = ("layer", "type", "kernel", "output", "params", "FLOPs", "RF", "stride")
    rows = [(layer.name, layer.type, layer.kernel, "x".join(map(str, layer.output_shape)),
             f"{layer.params:,}", f"{layer.flops:,}", _pair(layer.receptive_field),
             _pair(layer.stride)) for layer in sheet.layers]
    rows.append(("(between layers)", "", "", "", "", f"{sheet.flops_between_layers:,}", "", ""))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {4, 5}  # numbers

    def line(row):
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    classes = f", {sheet.num_classes} classes" if sheet.num_classes is not None else ""
    out = [f"{sheet.model}: input {'x'.join(map(str, sheet.input_shape))}{classes}; "
           "batch 1, inference mode", "", line(header), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    fwd, both = sheet.flops_forward, sheet.flops_forward_backward
    xla = [(f"  XLA, {label}", f"{value:,.0f} ({100 * (value / fwd - 1):+.1f}%)")
           for label, value in (("compiled", sheet.xla_flops),
                                ("compiled, no fusion", sheet.xla_flops_unfused),
                                ("before optimization", sheet.xla_flops_unoptimized)) if value]
    dense = sheet.flops_forward_dense
    totals = [
        ("parameters", f"{sheet.params:,} ({_human(sheet.params)})"),
        ("FLOPs forward", f"{fwd:,} ({_human(fwd)})"),
        ("  with padding taps", f"{dense:,} ({_human(dense)}, as a hand count 2*K*K*Cin*Cout*H*W "
                                "has it)"),
        *xla,
        ("FLOPs forward+backward", f"{both:,} ({_human(both)}, {both / max(fwd, 1):.2f}x forward)"),
        ("activations, batch 1", f"{sheet.activation_bytes:,} bytes ("
                                 f"{_human(sheet.activation_bytes, binary=True)}, layer outputs)"),
        ("output", "x".join(map(str, sheet.output_shape))),
    ]
    width = max(len(k) for k, _ in totals)
    out += [""] + [f"{k:<{width}}  {v}" for k, v in totals]
    out += ["", _FOOTER] + [f"note: {n}" for n in sheet.notes]
    return "\n".join(out)


def _pair(values) -> str:
    if values is None:
        return "-"
    texts = [v if isinstance(v, str) else str(Fraction(v)) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def _human(n: float, binary: bool = False) -> str:
    """865386 -> '865 K'; with `binary`, bytes: 32376 -> '31.6 KiB'."""
    base, units = (1024, ["B", "KiB", "MiB", "GiB", "TiB"]) if binary else \
        (1000, ["", "K", "M", "G", "T", "P"])
    i = 0
    while abs(n) >= base and i < len(units) - 1:
        n, i = n / base, i + 1
    return f"{n:.3g} {units[i]}".rstrip()
