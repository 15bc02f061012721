"""`launch.py report SWEEP_DIR [--metric NAME] [--out DIR] [--baseline NAME]`: a sweep's table
with error bars and significance, and its plots.

Writes into `--out` (default: the sweep directory) `report.md` and `report.csv`, one row per
variant (its runs differ only in seed): mean ± sample std and a 95% confidence interval (Student
t over the seeds) of the metric's final and best value, steps, wall time and parameters, and the
difference of the final mean from a baseline variant (the first, or `--baseline`) with the
p-value of Welch's t-test (unequal variances), so a reader sees which differences are noise;
`report_curves.png` (train loss and the metric against steps, mean over seeds with a ±1 std
band) and `report_bars.png` (final metric, mean with its 95% CI). Numbers are read from the
runs' own records (summary.json, metrics.jsonl), so every cell can be regenerated.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from errors import UserError

UNITS = {"accuracy": "fraction correct", "top5": "fraction correct", "miou": "mean IoU",
         "psnr": "dB", "loss": "task loss", "fid": "FID"}


# --- statistics ---------------------------------------------------------------------------------

def describe(values) -> dict:
    """n, mean, sample std and the 95% t interval of the mean (NaN where n < 2)."""
    x = np.asarray(values, np.float64)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test that `a` and `b` have the same mean."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(stats.ttest_ind(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                 equal_var=False).pvalue)


# --- reading the runs ---------------------------------------------------------------------------

def metric_mode(metric: str, config: dict) -> str:
    """'max' or 'min': the task's own mode for its own metric, 'min' for losses, else 'max'."""
    import tasks

    name = metric.split("/", 1)[1]
    task = tasks.task_class(config["task"]["name"])
    if name == task.default_metric:
        return task.default_mode
    return "min" if "loss" in name else "max"


def read_curve(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if metric in row:
                steps.append(row["step"])
                values.append(row[metric])
    return np.array(steps), np.array(values, np.float64)


def collect(root: Path, metric: str) -> tuple[list[dict], list[str]]:
    """Variants in manifest order, each with its finished runs' numbers; and the runs left out
    (failed or unfinished), by name."""
    from training import sweep

    manifest = sweep.read_manifest(root)
    variants: dict[str, dict] = {}
    left_out = []
    for run in manifest["runs"]:
        run_dir = Path(run["dir"])
        summary_path, config_path = run_dir / "summary.json", run_dir / "config.json"
        if not summary_path.exists():
            left_out.append(run["name"])
            continue
        summary = json.loads(summary_path.read_text())
        config = json.loads(config_path.read_text())
        if summary["steps"] != config["train"]["steps"] and not summary.get("early_stopped"):
            left_out.append(run["name"])
            continue
        if metric not in summary["final_metrics"]:
            raise UserError(f"--metric {metric!r} is not in the runs' final metrics (run "
                            f"{run['name']} has {', '.join(sorted(summary['final_metrics']))})")
        mode = metric_mode(metric, config)
        _, curve = read_curve(run_dir, metric)
        best = (curve.max() if mode == "max" else curve.min()) if len(curve) else math.nan
        v = variants.setdefault(run["variant"], {"variant": run["variant"], "runs": []})
        v["mode"] = mode
        v["runs"].append({"name": run["name"], "dir": run_dir, "seed": run["overrides"].get("seed"),
                          "final": summary["final_metrics"][metric], "best": float(best),
                          "steps": summary["steps"], "wall_time_s": summary["wall_time_s"],
                          "params": summary["params"]})
    return list(variants.values()), left_out


def table(variants: list[dict], baseline: str) -> list[dict]:
    """One row per variant: the report's numbers."""
    base = next(v for v in variants if v["variant"] == baseline)
    base_final = [r["final"] for r in base["runs"]]
    rows = []
    for v in variants:
        final = [r["final"] for r in v["runs"]]
        rows.append({
            "variant": v["variant"], "seeds": [r["seed"] for r in v["runs"]],
            "final": describe(final), "best": describe([r["best"] for r in v["runs"]]),
            "diff": float(np.mean(final) - np.mean(base_final)),
            "p_value": math.nan if v is base else welch_p(final, base_final),
            "steps": describe([r["steps"] for r in v["runs"]])["mean"],
            "wall_time_s": describe([r["wall_time_s"] for r in v["runs"]]),
            "params": v["runs"][0]["params"], "mode": v["mode"],
        })
    return rows


# --- writing ------------------------------------------------------------------------------------

def _num(x: float, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(d: dict) -> str:
    return "-" if math.isnan(d["std"]) else f"[{_num(d['ci_low'])}, {_num(d['ci_high'])}]"


def _pm(d: dict) -> str:
    return f"{_num(d['mean'])} ± {_num(d['std'])}"


def write_csv(rows: list[dict], path: Path) -> None:
    fields = ["variant", "n", "seeds", "final_mean", "final_std", "final_ci_low", "final_ci_high",
              "best_mean", "best_std", "best_ci_low", "best_ci_high", "diff_from_baseline",
              "p_value", "steps", "wall_time_s_mean", "wall_time_s_std", "params"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for r in rows:
            writer.writerow([r["variant"], r["final"]["n"], " ".join(map(str, r["seeds"])),
                             *(r["final"][k] for k in ("mean", "std", "ci_low", "ci_high")),
                             *(r["best"][k] for k in ("mean", "std", "ci_low", "ci_high")),
                             r["diff"], r["p_value"], r["steps"], r["wall_time_s"]["mean"],
                             r["wall_time_s"]["std"], r["params"]])


def markdown(rows: list[dict], metric: str, baseline: str, title: str,
             left_out: list[str]) -> str:
    mode = rows[0]["mode"]
    lines = [f"# {title}", "",
             f"Metric `{metric}` ({_unit(metric)}): final = after the last step, best = the "
             f"{'highest' if mode == 'max' else 'lowest'} logged evaluation. Mean ± sample std "
             "over seeds; 95% CI = mean ± t(0.975, n-1) std/√n; Δ = final mean minus the "
             f"baseline's (`{baseline}`); p = Welch's two-sided t-test on the final values "
             "(p ≥ 0.05: not distinguishable from seed-to-seed noise with these seeds).", "",
             "| variant | n | final | 95% CI | best | 95% CI | Δ final | p | steps | wall s "
             "| params |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "(baseline)" if r["variant"] == baseline else f"{r['diff']:+.4f}"
        p = "" if r["variant"] == baseline else _num(r["p_value"], 3)
        lines.append(f"| {r['variant']} | {r['final']['n']} | {_pm(r['final'])} "
                     f"| {_ci(r['final'])} | {_pm(r['best'])} | {_ci(r['best'])} | {diff} | {p} "
                     f"| {r['steps']:.0f} | {r['wall_time_s']['mean']:.1f} | {r['params']:,} |")
    if left_out:
        lines += ["", f"Left out (failed or unfinished): {', '.join(left_out)}"]
    return "\n".join(lines) + "\n"


def _unit(metric: str) -> str:
    name = metric.split("/", 1)[1]
    return UNITS.get(name.split("/")[0], name)


def _mean_curve(runs: list[dict], metric: str):
    """Steps every run logged, and the mean and std over runs there."""
    curves = [read_curve(r["dir"], metric) for r in runs]
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves))) if curves else []
    if not common:
        return None
    stacked = np.stack([v[np.searchsorted(s, common)] for s, v in curves])
    std = stacked.std(0, ddof=1) if len(runs) > 1 else np.zeros(len(common))
    return np.array(common), stacked.mean(0), std


def plot_curves(variants: list[dict], metric: str, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=110, layout="constrained")
    for i, name in enumerate(("train/loss", metric)):
        ax = fig.add_subplot(1, 2, i + 1)
        for v in variants:
            curve = _mean_curve(v["runs"], name)
            if curve is None:
                continue
            steps, mean, std = curve
            line, = ax.plot(steps, mean, label=v["variant"], lw=1.3,
                            marker="o" if len(steps) < 12 else None, ms=3)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{name} ({_unit(name)})")
        if name.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: mean over seeds, band ±1 std", fontsize=10)
    fig.savefig(path)


def plot_bars(rows: list[dict], metric: str, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.5), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))[::-1]
    means = [r["final"]["mean"] for r in rows]
    err = [0 if math.isnan(r["final"]["std"]) else r["final"]["ci_high"] - r["final"]["mean"]
           for r in rows]
    ax.barh(y, means, xerr=err, capsize=4, color="tab:blue", alpha=0.75)
    ax.set_yticks(y, [f"{r['variant']} (n={r['final']['n']})" for r in rows], fontsize=8)
    lo = min(m - e for m, e in zip(means, err))
    hi = max(m + e for m, e in zip(means, err))
    pad = 0.15 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-3
    ax.set_xlim(lo - pad, hi + pad)  # the differences, not the distance from zero, are the point
    ax.set_xlabel(f"final {metric} ({_unit(metric)}), mean with 95% CI")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.savefig(path)


def report(root: Path, metric: str = "", out: Path | None = None, baseline: str = "") -> Path:
    """Writes the report files into `out` (default `root`); returns report.md's path."""
    from training import sweep

    manifest = sweep.read_manifest(root)
    metric = metric or manifest["metric"]
    variants, left_out = collect(root, metric)
    if not variants:
        raise UserError(f"{root} has no finished run yet; run (or resume) the sweep first")
    names = [v["variant"] for v in variants]
    baseline = baseline or names[0]
    if baseline not in names:
        raise UserError(f"--baseline {baseline!r} is not a variant of this sweep; choose one of "
                        f"{', '.join(names)}")
    rows = table(variants, baseline)
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    title = Path(manifest["experiment"]).stem
    write_csv(rows, out / "report.csv")
    (out / "report.md").write_text(markdown(rows, metric, baseline, title, left_out))
    plot_curves(variants, metric, out / "report_curves.png", title)
    plot_bars(rows, metric, out / "report_bars.png", title)
    return out / "report.md"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="launch.py report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default="", help="PREFIX/NAME (default: the sweep's)")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: SWEEP_DIR)")
    parser.add_argument("--baseline", default="", help="variant name (default: the first)")
    args = parser.parse_args(argv)
    path = report(args.sweep_dir, args.metric, args.out, args.baseline)
    print(path.read_text(), end="")
    print(f"wrote {path}, report.csv, report_curves.png, report_bars.png in {path.parent}")
    return 0
