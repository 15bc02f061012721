"""`launch.py sweep --config EXP [--workdir DIR] [--config.FIELD=VALUE ...]`: an ablation.

The experiment file's `get_sweep()` returns a list of override dicts (`{"data.augment": "",
"seed": 1}`); each becomes one run in its own sub-directory of the sweep's workdir, named by its
overrides. Finished runs are skipped, so a stopped sweep continues where it was. At the end the
final metrics are aggregated over seeds (mean, sample std, n) into `sweep.json` and a table.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from errors import UserError, one_line
from training import cli

def load_sweep(config_path: str) -> list[dict]:
    spec = importlib.util.spec_from_file_location("experiment", config_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise UserError(f"{config_path} has no get_sweep(); add one returning a list of "
                        "override dicts, or use `launch.py train`")
    return list(module.get_sweep())


def run_name(overrides: dict) -> str:
    text = ",".join(f"{k}={v}" for k, v in overrides.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", text)[:200] or "base"


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
            if parents == ["model"]:
                with node.unlocked():
                    node[leaf] = value
            else:
                node[leaf] = value
        except (KeyError, AttributeError, TypeError) as err:
            raise UserError(f"sweep override {dotted}={value!r} does not fit the config: "
                            f"{one_line(err)}") from None
    return config


def aggregate(results: list[tuple[dict, dict]], reported: tuple[str, ...]) -> list[dict]:
    """Groups runs by their overrides other than `seed`; mean/std/n of each reported metric."""
    groups: dict[str, dict] = {}
    for overrides, summary in results:
        key = run_name({k: v for k, v in overrides.items() if k != "seed"})
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


def is_finished(workdir: Path, config) -> bool:
    """The run in `workdir` completed with exactly this config."""
    summary, saved = workdir / "summary.json", workdir / "config.json"
    return (summary.exists() and saved.exists()
            and json.loads(saved.read_text()) == json.loads(config.to_json())
            and json.loads(summary.read_text())["steps"] == config.train.steps)


def main(argv: list[str]) -> int:
    config, fv = cli.parse(argv, prog="launch.py sweep")
    config_path = fv["config"].config_filename
    sweep = load_sweep(config_path)
    runs = [(overrides, apply(config, overrides)) for overrides in sweep]  # all checked first
    from training import loop

    root = Path(fv.workdir) if fv.workdir else cli.default_workdir(config_path, "sweep")
    results = []
    for i, (overrides, run_config) in enumerate(runs, 1):
        workdir = root / run_name(overrides)
        if is_finished(workdir, run_config):
            summary = json.loads((workdir / "summary.json").read_text())
        else:
            print(f"[{i}/{len(runs)}] {run_name(overrides)}", flush=True)
            summary = loop.train(run_config, workdir, show_progress=False)
        results.append((overrides, summary))
    import tasks

    reported = tasks.headline_metrics(config)
    table = aggregate(results, reported)
    (root / "sweep.json").write_text(json.dumps(table, indent=2) + "\n")
    print(format_table(table, reported))
    print(f"sweep: {len(runs)} runs in {root}")
    return 0


def format_table(table: list[dict], reported: tuple[str, ...]) -> str:
    width = max([len("variant")] + [len(row["variant"]) for row in table])
    lines = [f"{'variant':<{width}} " + " ".join(f"{m:>22}" for m in reported)]
    for row in table:
        cells = [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f} (n={row[m]['n']})"
                 if m in row else "-" for m in reported]
        lines.append(f"{row['variant']:<{width}} " + " ".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)
