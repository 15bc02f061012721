"""The process's malloc (training/malloc.py, training/huge_pages.py) against convjax's train step:
each setting runs benchmarks/train_step.py in its own process (the loader and glibc read
their variables once, at start), the settings alternating run by run so machine noise hits
them alike; per model the median over runs of the step time, and the whole process's minor
page faults.

    uv run python -m benchmarks.malloc [--models lenet5,resnet20_cifar,resnet18]
        [--settings 4k,huge,mimalloc] [--runs 3] [--steps 10] [--rounds 3]
        [--peer torch|none] [--json out.json] [--png out.png]
    uv run python -m benchmarks.malloc --from-json out.json --png out.png   # redraw

`4k` is glibc's default (4 KiB pages), `huge` glibc with the huge-page tunable
(`CONVJAX_MALLOC=glibc`), `mimalloc` the preloaded mimalloc `launch.py` runs on by default.
With `--peer torch` each process also times the PyTorch twin (eager, channels-last) under the
same setting, since the allocator is the whole process's, PyTorch's allocations included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from training import huge_pages, malloc

LABELS = {"4k": "glibc, 4 KiB pages", "huge": "glibc, 2 MiB pages", "mimalloc": "mimalloc"}


def settings(names: list[str]) -> dict[str, dict[str, str]]:
    """Each setting's variables, all stated outright, so that nothing inherited from the
    caller decides one; an unknown name or a missing mimalloc is a ValueError."""
    base = {"LD_PRELOAD": "", malloc.ENV_VAR: "system"}
    known = {"4k": {**base, "GLIBC_TUNABLES": f"{huge_pages.TUNABLE}=0"},
             "huge": {**base, "GLIBC_TUNABLES": f"{huge_pages.TUNABLE}=1"}}
    library = malloc.mimalloc_library()
    if library is not None:
        known["mimalloc"] = {**known["huge"], "LD_PRELOAD": str(library),
                             **malloc.MIMALLOC_OPTIONS}
    for name in names:
        if name not in known:
            raise ValueError(f"--settings: {name!r} is not one of {', '.join(known)}"
                             + ("" if library else " (mimalloc: install cmeel-mimalloc)"))
    return {name: known[name] for name in names}


def run_once(env: dict, args) -> tuple[dict, int]:
    """One train_step process under `env`; (its JSON or {'error': ...}, its minor faults)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "benchmarks.train_step", "--models", args.models,
               "--peer", args.peer, "--peer-variants", "eager_cl", "--steps", str(args.steps),
               "--rounds", str(args.rounds), "--json", out.name]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
        proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
            return {"error": f"exit status {proc.returncode}: {last}"}, faults
        return json.loads(Path(out.name).read_text()), faults


def plot(results: dict, out: str) -> None:
    """Step ms per model and variant under each setting: the median over processes, the
    bar's whisker spanning their min-max."""
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    names = list(results["step_ms"])
    keys = list(results["step_ms"][names[0]])
    width = 0.8 / len(names)
    fig = Figure(figsize=(1.6 + 1.3 * len(keys), 4), layout="constrained")
    ax = fig.subplots()
    for n, name in enumerate(names):
        offset = (n - (len(names) - 1) / 2) * width
        values = [results["step_ms"][name][k] for k in keys]
        mid = [statistics.median(v) for v in values]
        spread = [[m - min(v) for m, v in zip(mid, values)],
                  [max(v) - m for m, v in zip(mid, values)]]
        ax.bar([i + offset for i in range(len(keys))], mid, width, yerr=spread, capsize=3,
               label=LABELS.get(name, name))
    ax.set_xticks(range(len(keys)), [k.replace(" ", "\n") for k in keys], fontsize=8)
    ax.set_ylabel("train step, ms (median over processes; min-max)")
    ax.set_yscale("log")
    ax.set_title(f"convjax's train step by malloc (THP {results['thp_mode']}), 2-core CPU")
    ax.legend()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet20_cifar,resnet18")
    p.add_argument("--settings", default="4k,huge,mimalloc",
                   help="comma-separated, the first the baseline of the table's ratios")
    p.add_argument("--runs", type=int, default=3, help="processes per setting")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peer", choices=("torch", "none"), default="none")
    p.add_argument("--json", default=None)
    p.add_argument("--png", default=None, help="bar chart of the step times")
    p.add_argument("--from-json", default=None, help="redraw --png from a saved --json")
    args = p.parse_args(argv)
    if args.from_json:
        try:
            saved = json.loads(Path(args.from_json).read_text())
            _ = next(iter(saved["step_ms"].values())), saved["thp_mode"]  # plot's keys
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as err:
            print(f"error: --from-json {args.from_json}: not this benchmark's --json output "
                  f"({type(err).__name__}: {err}); rerun with --json to make one",
                  file=sys.stderr)
            return 2
        plot(saved, args.png or "malloc.png")
        return 0
    try:
        chosen = settings(args.settings.split(","))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"THP mode: {huge_pages.thp_mode()}")
    times: dict[str, dict[str, list[float]]] = {s: {} for s in chosen}
    faults: dict[str, list[int]] = {s: [] for s in chosen}
    for run in range(args.runs):
        for name, env in chosen.items():
            result, n_faults = run_once(env, args)
            if "error" in result:
                print(f"{name}: failed: {result['error']}")
                return 1
            faults[name].append(n_faults)
            for entry in result["models"]:
                for variant, row in entry["runs"].items():
                    key = f"{entry['model']} {variant}"
                    times[name].setdefault(key, []).append(row["step_ms"])
            print(f"run {run} {name}: {n_faults} minor faults; " + ", ".join(
                f"{k} {v[-1]:.1f} ms" for k, v in times[name].items()), flush=True)
    first, *rest = chosen
    print(f"\n{'model variant':<36}" + "".join(f"{s + ' ms':>14}" for s in chosen)
          + "".join(f"{s + '/' + first:>16}" for s in rest))
    for key in times[first]:
        mid = [statistics.median(times[s][key]) for s in chosen]
        print(f"{key:<36}" + "".join(f"{m:>14.1f}" for m in mid)
              + "".join(f"{m / mid[0]:>16.2f}" for m in mid[1:]))
    print("minor faults per process (median): " + ", ".join(
        f"{s} {statistics.median(v):,.0f}" for s, v in faults.items()))
    results = {"thp_mode": huge_pages.thp_mode(), "settings": chosen, "step_ms": times,
               "minor_faults_per_process": faults, "steps": args.steps, "rounds": args.rounds}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.png:
        plot(results, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
