"""Several train-step benchmark runs side by side (benchmarks/train_step.py's JSON files): per
model, each run's ratio and, round by round, convjax's time over the best PyTorch variant's.
A ratio taken from one run hides how far the host's noise moves it; this shows the spread.

    uv run python -m benchmarks.bench_runs \
        benchmarks/results/train_step_cpu_2core_amd_epyc_run*.json \
        --out docs/train_step_runs_amd_epyc.png

Prints one line per run and model (the run's ratio, and the round ratios' range) and writes
the picture: one panel per model, one column of points per run (a point per round: convjax's
round median over the best PyTorch variant's in the same round), the run's ratio as a bar.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from errors import UserError, exit_with


def load(path: str) -> dict:
    """One run's JSON, refusing a file that is not benchmarks/train_step.py's output."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable bench JSON ({err}); pass the files "
                        "`launch.py bench --json` wrote")
    if not isinstance(result, dict) or "models" not in result:
        raise UserError(f"{path}: no 'models' in it; pass the files `launch.py bench --json` "
                        "wrote")
    return result


def round_ratios(entry: dict) -> list[float]:
    """convjax's round medians over the best peer's, round by round (its rounds interleave
    with the peer's, so each pair met the same noise)."""
    if not entry.get("best_peer") or not entry.get("ratio"):
        return []
    ours = entry["runs"][next(iter(entry["ratio"]))]  # the variant the run's ratio is of
    peer = entry["runs"][entry["best_peer"]]
    return [a / b for a, b in zip(ours["round_ms"], peer["round_ms"])]


def summary(paths: list[str]) -> dict[str, list[tuple[str, float, list[float]]]]:
    """Per model: (run name, the run's ratio, its round ratios), in the order given."""
    table: dict[str, list] = {}
    for path in paths:
        for entry in load(path)["models"]:
            if entry.get("ratio"):
                ratio = next(iter(entry["ratio"].values()))
                table.setdefault(entry["model"], []).append(
                    (Path(path).stem, ratio, round_ratios(entry)))
    return table


def _labels(names: list[str]) -> list[str]:
    """The names less the prefix they share (`..._run1`, `..._run2` -> `run1`, `run2`)."""
    cut = len(os.path.commonprefix(names)) if len(names) > 1 else 0
    cut = names[0].rfind("_", 0, cut) + 1 if cut else 0  # at a word's start
    return [name[cut:] or name for name in names]


def plot(table: dict, out: str, title: str) -> None:
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    fig = Figure(figsize=(4.2 * len(table), 3.8), dpi=100, layout="constrained")
    for i, (model, runs) in enumerate(table.items()):
        ax = fig.add_subplot(1, len(table), i + 1)
        for x, (_, ratio, rounds) in enumerate(runs):
            ax.bar(x, ratio, color="tab:blue", alpha=0.35, width=0.7)
            ax.plot([x] * len(rounds), rounds, "o", color="tab:blue", ms=4)
            ax.text(x, ratio, f"{ratio:.2f}", ha="center", va="bottom", fontsize=8)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(runs)), _labels([name for name, _, _ in runs]), fontsize=8)
        ax.set_ylabel("convjax / best PyTorch (bar: run, dots: rounds)")
        ax.set_title(model, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.savefig(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_runs", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files of `launch.py bench --json`")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="train step: run and round ratios, run by run")
    args = parser.parse_args(argv)
    table = summary(args.runs)
    if not table:
        raise UserError("no run has a PyTorch peer, so there is no ratio to show; run the "
                        "bench with `--peer torch`")
    for model, runs in table.items():
        for name, ratio, rounds in runs:
            spread = f"rounds {min(rounds):.2f}-{max(rounds):.2f}" if rounds else "no rounds"
            print(f"{model:16s} {name:45s} ratio {ratio:.2f}  {spread}")
    plot(table, args.out, args.title)
    return 0


if __name__ == "__main__":
    exit_with(main)
