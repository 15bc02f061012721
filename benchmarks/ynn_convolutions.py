"""Whether the trainer's CPU steps should keep XLA's convolutions out of YNNPACK: each model's
train step compiled twice in one process, with `models.conv_lowering.compiler_options()`
(XLA's own Eigen convolutions) and without it (this jaxlib's default: YNNPACK's), timed
interleaved.

    uv run python -m benchmarks.ynn_convolutions [--models resnet20_cifar:128:32x32x3,...]
        [--rounds 3] [--steps 4] [--json OUT]

A model is `name:batch:HxWxC`. Per model the median over rounds of each round's median step
ms, and eigen / ynn (< 1: the trainer's choice is faster). Rerun it after a jaxlib upgrade:
YNNPACK is young in XLA, and the option is one dict in models/conv_lowering.py.

Measured (2-core CPU, a slow hour, 3 rounds of 4 steps, ynn -> eigen ms;
benchmarks/results/ynn_convolutions_cpu_2core.json): resnet20_cifar b128 647 -> 420 (0.65),
resnet18 b32 64x64 289 -> 252 (0.87), lenet5 b128 10.1 -> 9.9 (0.98), mobilenet_v1 b16 64x64
547 -> 612 (1.12: its depthwise convolutions, slow in both, are slower in Eigen; 1.03 in an
earlier run), densenet_bc_100_12_cifar b32 1,696 -> 1,587 (0.94), vgg_a b8 64x64 977 -> 841
(0.86), googlenet b8 96x96 197 -> 169 (0.86), resnet50 b8 64x64 218 -> 203 (0.93), airbench94
b64 482 -> 325 (0.67).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks import train_step
from models import conv_lowering

DEFAULT_MODELS = ("resnet20_cifar:128:32x32x3,resnet18:32:64x64x3,lenet5:128:32x32x1,"
                  "mobilenet_v1:16:64x64x3,densenet_bc_100_12_cifar:32:32x32x3,vgg_a:8:64x64x3,"
                  "googlenet:8:96x96x3,resnet50:8:64x64x3,airbench94:64:32x32x3")


def parse_model(spec: str) -> train_step.Case:
    name, batch, shape = spec.split(":")
    h, w, c = (int(n) for n in shape.split("x"))
    return train_step.Case(name, int(batch), (h, w, c), "float32", 10)


def runner_without_options(case: train_step.Case):
    """The trainer's step for `case`, compiled with XLA's default options (YNNPACK's
    convolutions)."""
    saved = conv_lowering.CPU_COMPILER_OPTIONS
    conv_lowering.CPU_COMPILER_OPTIONS = {}
    try:
        return train_step.convjax_runner(case, "auto")
    finally:
        conv_lowering.CPU_COMPILER_OPTIONS = saved


def compare(case: train_step.Case, rounds: int, steps: int) -> dict:
    runners = {"ynn": runner_without_options(case),
               "eigen": train_step.convjax_runner(case, "auto")}
    for runner in runners.values():
        runner.step(), runner.step()  # warm-up
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                runner.step()
                times.append(time.perf_counter() - start)
            medians[name].append(1e3 * statistics.median(times))
    ms = {name: statistics.median(v) for name, v in medians.items()}
    return {"model": case.model, "batch": case.batch, "input": "x".join(map(str, case.input_shape)),
            "step_ms": ms, "rounds_ms": medians, "eigen_over_ynn": ms["eigen"] / ms["ynn"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = []
    for spec in args.models.split(","):
        r = compare(parse_model(spec), args.rounds, args.steps)
        results.append(r)
        print(f"{r['model']} b{r['batch']} {r['input']}: ynn {r['step_ms']['ynn']:.1f} ms, "
              f"eigen {r['step_ms']['eigen']:.1f} ms, eigen/ynn {r['eigen_over_ynn']:.2f}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"options": conv_lowering.CPU_COMPILER_OPTIONS, "models": results}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
