"""XLA CPU runtime flags against convjax's train step: each flag set runs in its own process
(XLA reads $XLA_FLAGS once, at start-up), the sets alternating run by run so machine noise
hits them alike; per model the median over runs of benchmarks/train_step.py's step time.

    uv run python -m benchmarks.xla_flags [--models lenet5,resnet20_cifar] [--runs 3]
        [--sets baseline,no_thunk,...] [--json out.json]

A set's name says what it changes against XLA's defaults (`SETS` lists them); the table gives
per model the median step ms [min-max over runs] and the ratio to `baseline` (< 1: faster).
`--xla_cpu_use_thunk_runtime=false` is accepted but ignored by current XLA ("no longer
supported": the thunk runtime is the only one), so it is not in the list.

Measured (2 runs per set, `--steps 5 --rounds 2`, shared 2-core CPU, load average 1.4-6), ms
per step lenet5 / resnet20_cifar / resnet18 (64x64): baseline 39.9, 29.1 / 822, 707 / 278, 334;
single_thread_eigen 22.2, 28.1 / 704, 1242 / 292, 604; onednn 26.3, 39.6 / 839, 1160 / 380,
483; xnn_convs 28.9, 38.5 / 802, 1161 / 380, 483; ynn_convs 28.1 / 878 / 421, then its second
process died with no message; concurrency_scheduler 26.9 / 801 / 342. The baseline alone moved
by 27% (lenet5) between its two runs: no set is a clear win over that noise, so convjax keeps
XLA's defaults.

Again with the banded and patches lowerings in blocks and 2-D products (`--sets
baseline,onednn_custom_call,ynn_without_reduce --runs 2 --steps 10 --rounds 3`,
benchmarks/results/xla_flags_cpu_2core.json, another 2-core host, huge pages on): lenet5 /
resnet20_cifar / resnet18 baseline 11.3 / 644 / 300 ms; onednn_custom_call 1.42x / 0.82x /
0.91x, but its compiled step is the baseline's, instruction for instruction (this jaxlib
rewrites no convolution or dot into oneDNN), so those ratios are the machine's noise between
processes running the same program; ynn_without_reduce (XLA's reductions and reduce-windows
no longer handed to YNNPACK) 0.82x / 0.91x / 1.67x: faster for LeNet-5, whose average pools
YNNPACK receives with their constant scale factors materialised as whole tensors, much slower
for ResNet-18's BatchNorm reductions. A flag is process-wide, so convjax sets none.

YNNPACK's convolutions (`--sets baseline,ynn_without_conv,ynn_off --runs 2`, quiet 2-core
host, lenet5 / resnet20_cifar / resnet18 ms): baseline 8.3 / 509 / 243; ynn_without_conv
(convolutions left to XLA's own Eigen kernels, dots and reductions still YNNPACK's) 1.15x /
0.80x / 0.97x; ynn_off 0.96x / 0.93x / 1.76x. Convolutions out of YNNPACK is the one clear
win (ResNet-20's weight gradients: 21 -> 6 ms at 16x16x32), so the trainer's steps compile
with it, per program (models/conv_lowering.py: `compiler_options`); the process-wide
baseline here then no longer matches the trainer's step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SETS = {
    "baseline": "",
    "single_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnn_convs": "--xla_cpu_experimental_xnn_fusion_type="
                 "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "ynn_convs": "--xla_cpu_experimental_ynn_fusion_type="
                 "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "concurrency_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "onednn_custom_call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "ynn_without_reduce": "--xla_cpu_experimental_ynn_fusion_type="
                          "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_DOT",
    "ynn_without_conv": "--xla_cpu_experimental_ynn_fusion_type="
                        "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE",
    "ynn_off": "--xla_cpu_experimental_ynn_fusion_type=",
}


def run_once(flags: str, models: str, steps: int, rounds: int, extra_env: dict) -> dict:
    """One train_step run in a fresh process under `flags`; its JSON, or {'error': ...}."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, XLA_FLAGS=flags, **extra_env)
        cmd = [sys.executable, "-m", "benchmarks.train_step", "--models", models,
               "--peer", "none", "--steps", str(steps), "--rounds", str(rounds),
               "--json", out.name]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
            return {"error": f"exit status {proc.returncode}: {last}"}
        return json.load(open(out.name))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet20_cifar,resnet18")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--runs", type=int, default=3, help="processes per flag set")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sets = args.sets.split(",")
    times: dict[str, dict[str, list[float]]] = {s: {} for s in sets}
    errors: dict[str, str] = {}
    for run in range(args.runs):
        for name in sets:
            if name in errors:
                continue
            result = run_once(SETS[name], args.models, args.steps, args.rounds, {})
            if "error" in result:
                errors[name] = result["error"]
                print(f"{name}: failed: {errors[name]}", flush=True)
                continue
            for entry in result["models"]:
                ms = entry["runs"]["convjax[auto]"]["step_ms"]
                times[name].setdefault(entry["model"], []).append(ms)
            print(f"run {run} {name}: " + ", ".join(
                f"{m} {v[-1]:.1f} ms" for m, v in times[name].items()), flush=True)
    print(f"\n{'flags':<24}" + "".join(f"{m:>26}" for m in args.models.split(",")))
    for name in sets:
        if name in errors:
            print(f"{name:<24} failed: {errors[name]}")
            continue
        base = times["baseline"] if "baseline" in times else None
        cells = []
        for m, v in times[name].items():
            rel = (f" ({statistics.median(v) / statistics.median(base[m]):.2f}x)"
                   if base and m in base else "")
            cells.append(f"{statistics.median(v):>10.1f} [{min(v):.0f}-{max(v):.0f}]{rel}")
        print(f"{name:<24}" + "".join(f"{c:>26}" for c in cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sets": {s: SETS[s] for s in sets}, "step_ms": times,
                       "errors": errors}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
