"""The model zoo's table: parameters, forward GFLOPs at each network's own input, and the
CPU (or whatever backend runs it) time of one jitted forward+backward at batch 8.

    uv run python -m benchmarks.model_zoo [--names resnet50,vgg_d] [--repeats 3] [--json out.json]

FLOPs are the architecture sheet's count (`launch.py summary`, XLA's convention: a multiply-add
is 2). The time is the median of `--repeats` calls after one warm-up (compilation excluded, and
reported on its own), with a mean-squared loss on the logits so every layer is differentiated.
Two columns make the times comparable across nets measured in the same run: the achieved
GFLOP/s (the sheet's forward+backward count x 8 / time; the sheet counts BatchNorm on running
statistics, the timed step on the batch's, a little more work) and the time relative to
ResNet-50's. `benchmarks/results/model_zoo_cpu_2core.json` is one run on a 2-core CPU
(`--repeats 3 --json ...`); there, noise reorders close pairs (googlenet vs googlenet_aux,
densenet169 vs 201, vgg_d vs vgg_d_bn), so read differences under ~25% as ties.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

import models
from analysis import sheet as summary

BATCH = 8


def fwd_bwd_seconds(name: str, repeats: int) -> tuple[float, float]:
    """(compile seconds, median seconds per forward+backward at batch 8)."""
    spec = models.spec(name)
    model = models.create(name)
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def grads(params, rest, x):
        # nnx.grad, as the train step: BatchNorm updates its statistics in place.
        model = nnx.merge(graphdef, params, rest)
        return nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)

    x = jax.random.normal(jax.random.key(0), (BATCH, *spec.input_shape))
    start = time.perf_counter()
    jax.block_until_ready(grads(params, rest, x))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grads(params, rest, x))
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default=",".join(models.names()))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    print(f"{'model':<28}{'input':>12}{'params':>14}{'GFLOPs':>9}{'compile s':>11}"
          f"{'fwd+bwd s @8':>14}{'GFLOP/s':>9}", flush=True)
    for name in args.names.split(","):
        sheet = summary.summarize(name, check_xla=False)
        compile_s, step_s = fwd_bwd_seconds(name, args.repeats)
        row = {"model": name, "input": "x".join(map(str, sheet.input_shape)),
               "params": sheet.params, "gflops_forward": sheet.flops_forward / 1e9,
               "compile_s": compile_s, "fwd_bwd_s_batch8": step_s,
               "achieved_gflop_per_s": sheet.flops_forward_backward * BATCH / step_s / 1e9}
        rows.append(row)
        print(f"{name:<28}{row['input']:>12}{row['params']:>14,}{row['gflops_forward']:>9.3f}"
              f"{compile_s:>11.1f}{step_s:>14.3f}{row['achieved_gflop_per_s']:>9.1f}",
              flush=True)
    peer = next((row for row in rows if row["model"] == "resnet50"), None)
    if peer:
        print("\ntime relative to resnet50 in this run:")
        for row in rows:
            row["time_vs_resnet50"] = row["fwd_bwd_s_batch8"] / peer["fwd_bwd_s_batch8"]
            print(f"  {row['model']:<28}{row['time_vs_resnet50']:>10.3g}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "devices": len(jax.devices()),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
