"""`launch.py sweep --config EXP [--workdir DIR] [--parallel N] [--executor local|slurm]
[--dry-run] [--metric NAME] [--stop_after N] [--config.FIELD=VALUE ...]`: an ablation.

The experiment file's `get_sweep()` returns a list of plain override dicts
(`{"model.act": "relu", "seed": 1}`); `grid`, `zipped` and `seeds` below build such lists. Each
becomes one run in its own sub-directory of the sweep directory, named by its overrides
(`model.act=relu,seed=1`); `manifest.json` records the runs, the commit and the command.
Finished runs are skipped, interrupted ones resume from their checkpoint, and a failing run is
reported with its error without stopping the others; the exit status is 1 when any failed.
`--stop_after N` stops every run at step N, as if preempted (a later sweep resumes them).

Runs go one after another in this process, or `--parallel N` at a time in subprocesses that
split the CPU cores (or GPUs) between them, or as a SLURM job array through submitit
(`--executor slurm`); training/sweep_exec.py runs them. `launch.py report SWEEP_DIR` turns the
runs into a table with error bars and significance (training/report.py).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np

from errors import UserError, one_line
from training import cli

MANIFEST = "manifest.json"
TABLE = "sweep.json"


# --- building the list of variants (used by experiment files) ---------------------------------

def _as_list(axis) -> list[dict]:
    """A dict of {field: values} as its product, a list of override dicts as it is."""
    if isinstance(axis, dict):
        fields = list(axis)
        return [dict(zip(fields, values)) for values in itertools.product(*axis.values())]
    return [dict(overrides) for overrides in axis]


def grid(*axes) -> list[dict]:
    """Every combination: `grid({"model.act": ["relu", "elu"]}, seeds(3))` is 6 override dicts,
    the first axis varying slowest. An axis is a {field: values} dict (itself expanded as a
    product) or a list of override dicts."""
    combos = [{}]
    for axis in axes:
        combos = [{**left, **right} for left in combos for right in _as_list(axis)]
    return combos


def zipped(axis: dict) -> list[dict]:
    """Fields that change together: `zipped({"optimizer.name": ["sgd", "adam"],
    "optimizer.lr": [0.1, 1e-3]})` is 2 override dicts."""
    lengths = {len(values) for values in axis.values()}
    if len(lengths) > 1:
        raise ValueError(f"zipped fields need equally many values, got "
                         f"{ {field: len(values) for field, values in axis.items()} }")
    return [dict(zip(axis, values)) for values in zip(*axis.values())]


def seeds(n: int) -> list[dict]:
    """`[{"seed": 0}, ..., {"seed": n - 1}]`."""
    return [{"seed": seed} for seed in range(n)]


# --- what a sweep runs ------------------------------------------------------------------------

def load_sweep(config_path: str) -> list[dict]:
    spec = importlib.util.spec_from_file_location("experiment", config_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise UserError(f"{config_path} has no get_sweep(); add one returning a list of "
                        "override dicts, or use `launch.py train`")
    sweep = list(module.get_sweep())
    names = [run_name(overrides) for overrides in sweep]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(f"{config_path}: get_sweep() lists the same run more than once "
                        f"({', '.join(twice)}); each override dict must differ")
    return sweep


def run_name(overrides: dict) -> str:
    """`act=relu,lr=0.01,seed=1`: each field by its last component, unless two fields share
    it (`optimizer.name=sgd,schedule.name=step`); tuples as `150-225`."""
    last = [k.rsplit(".", 1)[-1] for k in overrides]
    parts = []
    for (key, value), short in zip(overrides.items(), last):
        name = short if last.count(short) == 1 else key
        text = "-".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        parts.append(f"{name}={text}")
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", ",".join(parts))[:200] or "base"


def variant_name(overrides: dict) -> str:
    """The run's name without its seed: the runs of one variant differ only in seed."""
    return run_name({k: v for k, v in overrides.items() if k != "seed"})


def apply(config, overrides: dict):
    """A copy of `config` with dotted-field overrides; an unknown field is a UserError, except
    under `model.`, whose fields are the network's own options and differ per network."""
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        try:
            for name in parents:
                node = node[name]
            if isinstance(value, list):  # a run's overrides read back from JSON
                value = tuple(value)
            if parents == ["model"]:
                with node.unlocked():
                    node[leaf] = value
            else:
                node[leaf] = value
        except (KeyError, AttributeError, TypeError) as err:
            raise UserError(f"sweep override {dotted}={value!r} does not fit the config: "
                            f"{one_line(err)}") from None
    return config


def is_finished(workdir: Path, config) -> bool:
    """The run in `workdir` completed with exactly this config (all steps, or stopped early by
    its early-stopping rule)."""
    summary, saved = workdir / "summary.json", workdir / "config.json"
    if not (summary.exists() and saved.exists()):
        return False
    done = json.loads(summary.read_text())
    return (same_config(json.loads(saved.read_text()), config)
            and (done["steps"] == config.train.steps or bool(done.get("early_stopped"))))


def same_config(saved: dict, config) -> bool:
    """The saved config is `config`, where a field added since the run was saved counts as
    its default (the run ran as the default does), as resuming a run counts it."""
    from training.config import base_config

    now = _flat(json.loads(config.to_json()))
    defaults = _flat(json.loads(base_config().to_json()))
    saved = {**{k: v for k, v in defaults.items() if k in now}, **_flat(saved)}
    return saved == now


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


# --- the command ------------------------------------------------------------------------------

def _own_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own flags, and the rest (train's flags and config overrides)."""
    parser = argparse.ArgumentParser(prog="launch.py sweep", add_help=False, allow_abbrev=False)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
    parser.add_argument("--metric", default="")
    parser.add_argument("--slurm_partition", default="")
    parser.add_argument("--slurm_time_min", type=int, default=60)
    parser.add_argument("--slurm_gpus_per_run", type=int, default=0)
    parser.add_argument("--slurm_cpus_per_run", type=int, default=2)
    try:
        return parser.parse_known_args(argv)
    except SystemExit:  # argparse printed the problem already
        raise UserError("bad sweep flag (see above); run `launch.py sweep --help`") from None


def _check_metric(config, metric: str) -> str:
    """The metric the sweep's table shows: `--metric`, else the task's own."""
    import tasks

    headline = tasks.headline_metrics(config)
    if not metric:
        return headline[0]
    if metric.split("/", 1)[0] not in (config.eval.prefix, "val", "train") or "/" not in metric:
        raise UserError(f"--metric {metric!r} is not a metric a run reports; give PREFIX/NAME "
                        f"with PREFIX {config.eval.prefix}, val or train, e.g. "
                        f"{', '.join(headline)}")
    return metric


def plan(config, config_path: str, root: Path) -> list[dict]:
    """One entry per run: name, variant, overrides, directory; every override checked first."""
    runs = []
    for overrides in load_sweep(config_path):
        apply(config, overrides)  # a mistake in any run is reported before the first one trains
        runs.append({"name": run_name(overrides), "variant": variant_name(overrides),
                     "overrides": overrides, "dir": str(root / run_name(overrides))})
    return runs


def write_manifest(root: Path, config_path: str, train_argv: list[str], runs: list[dict],
                   metric: str, stop_after: int | None) -> None:
    from training import record

    commit = record._git("rev-parse", "HEAD")
    diff = record._git("diff", "HEAD")
    manifest = {
        "experiment": str(Path(config_path).resolve()), "train_argv": train_argv,
        "command": sys.argv,
        "git_commit": commit.strip() if commit else None, "git_dirty": bool(diff),
        "metric": metric, "stop_after": stop_after, "runs": runs,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise UserError(f"{root} is not a sweep directory (no {MANIFEST}); give the --workdir "
                        "of a `launch.py sweep`")
    return json.loads(path.read_text())


def _train_argv(rest: list[str], config_path: str) -> list[str]:
    """train's arguments as each run re-parses them: the experiment file made absolute, without
    the sweep-wide --workdir/--stop_after (each run has its own)."""
    out, skip = [], False
    for arg in rest:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--workdir", "--stop_after", "--config"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return ["--config", str(Path(config_path).resolve()), *out]


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    own, rest = _own_flags(argv)
    config, fv = cli.parse(rest, prog="launch.py sweep")
    if fv.distributed:
        raise UserError("--distributed does not apply to a sweep: its runs are single-host; "
                        "use --executor slurm to spread them over machines")
    if fv.stop_after is not None and fv.stop_after < 1:
        raise UserError(f"--stop_after must be a step >= 1, got {fv.stop_after}")
    if own.parallel < 1:
        raise UserError(f"--parallel must be >= 1, got {own.parallel}")
    config_path = fv["config"].config_filename
    root = Path(fv.workdir) if fv.workdir else cli.default_workdir(config_path, "sweep")
    metric = _check_metric(config, own.metric)
    runs = plan(config, config_path, root)
    if own.dry_run:
        for run in runs:
            finished = is_finished(Path(run["dir"]), apply(config, run["overrides"]))
            print(f"{run['dir']}{'  (finished)' if finished else ''}")
        print(f"sweep: {len(runs)} runs in {root} (dry run: nothing trained)")
        return 0
    write_manifest(root, config_path, _train_argv(rest, config_path), runs, metric,
                   fv.stop_after)
    from training import sweep_exec

    statuses = sweep_exec.execute(root, own)
    return summarise(root, runs, statuses, metric)


def summarise(root: Path, runs: list[dict], statuses: dict[str, dict], metric: str) -> int:
    """Prints each failure and the table; writes sweep.json; 1 when any run failed."""
    results = []
    for run in runs:
        status = statuses[run["name"]]
        if status["status"] == "failed":
            print(f"FAILED {run['name']}: {status['error']}", file=sys.stderr)
        summary_path = Path(run["dir"]) / "summary.json"
        if status["status"] in ("done", "skipped") and summary_path.exists():
            results.append((run["overrides"], json.loads(summary_path.read_text())))
    reported = (metric,) + tuple(m for m in ("train/loss",) if m != metric)
    table = aggregate(results, reported)
    (root / TABLE).write_text(json.dumps({"statuses": statuses, "table": table}, indent=2) + "\n")
    if table:
        print(format_table(table, reported))
    counts = {s: sum(st["status"] == s for st in statuses.values())
              for s in ("done", "skipped", "stopped", "failed")}
    print(f"sweep: {len(runs)} runs in {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items()
                                                          if n))
    if counts["done"] + counts["skipped"]:
        print(f"report: launch.py report {root}")
    return 1 if counts["failed"] else 0


def aggregate(results: list[tuple[dict, dict]], reported: tuple[str, ...]) -> list[dict]:
    """Groups runs by their overrides other than `seed`; mean/std/n of each reported metric."""
    groups: dict[str, dict] = {}
    for overrides, summary in results:
        key = variant_name(overrides)
        group = groups.setdefault(key, {"variant": key, "runs": [], "seeds": []})
        group["runs"].append(summary["final_metrics"])
        group["seeds"].append(overrides.get("seed"))
    table = []
    for group in groups.values():
        row = {"variant": group["variant"], "seeds": group["seeds"]}
        for metric in reported:
            values = np.array([run[metric] for run in group["runs"] if metric in run])
            if len(values):
                row[metric] = {"mean": float(values.mean()), "n": len(values),
                               "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        table.append(row)
    return table


def format_table(table: list[dict], reported: tuple[str, ...]) -> str:
    width = max([len("variant")] + [len(row["variant"]) for row in table])
    lines = [f"{'variant':<{width}} " + " ".join(f"{m:>22}" for m in reported)]
    for row in table:
        cells = [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f} (n={row[m]['n']})"
                 if m in row else "-" for m in reported]
        lines.append(f"{row['variant']:<{width}} " + " ".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)
