"""`launch.py report`: its numbers equal a hand computation over the runs' records, and it
writes its table and plots; a bad baseline is a one-line UserError."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from errors import UserError
from training import report

FINAL = {"lr=0.1": [0.90, 0.92, 0.97], "lr=0.01": [0.80, 0.85, 0.81]}
# Student t, 97.5% quantile, 2 degrees of freedom, in closed form: (2p - 1) / sqrt(2p(1 - p))
T_975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)


def _fake_sweep(root):
    runs = []
    for variant, finals in FINAL.items():
        for seed, final in enumerate(finals):
            name = f"{variant},seed={seed}"
            run_dir = root / name
            run_dir.mkdir(parents=True)
            (run_dir / "config.json").write_text(json.dumps(
                {"task": {"name": "classification"}, "train": {"steps": 20}}))
            (run_dir / "summary.json").write_text(json.dumps(
                {"steps": 20, "wall_time_s": 10.0 + seed, "params": 1234,
                 "final_metrics": {"test/accuracy": final, "train/loss": 0.1}}))
            lines = [{"step": 10, "train/loss": 0.5}, {"step": 10, "test/accuracy": final + 0.01},
                     {"step": 20, "train/loss": 0.1}, {"step": 20, "test/accuracy": final}]
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
            runs.append({"name": name, "variant": variant, "dir": str(run_dir),
                         "overrides": {"optimizer.lr": float(variant[3:]), "seed": seed}})
    runs.append({"name": "lr=1.0,seed=0", "variant": "lr=1.0", "dir": str(root / "missing"),
                 "overrides": {}})
    (root / "manifest.json").write_text(json.dumps(
        {"experiment": "/x/ablate_lr.py", "metric": "test/accuracy", "runs": runs}))


def test_report_numbers_equal_a_hand_computation(tmp_path):
    _fake_sweep(tmp_path)
    report.report(tmp_path, out=tmp_path / "out")
    rows = {r["variant"]: r for r in csv.DictReader(open(tmp_path / "out" / "report.csv"))}
    a, b = np.array(FINAL["lr=0.01"]), np.array(FINAL["lr=0.1"])
    mean = a.sum() / 3
    std = math.sqrt(((a - mean) ** 2).sum() / 2)
    half = T_975_2 * std / math.sqrt(3)
    row = rows["lr=0.01"]
    assert float(row["final_mean"]) == pytest.approx(mean, abs=1e-12)
    assert float(row["final_std"]) == pytest.approx(std, abs=1e-12)
    assert float(row["final_ci_low"]) == pytest.approx(mean - half, abs=1e-12)
    assert float(row["final_ci_high"]) == pytest.approx(mean + half, abs=1e-12)
    assert float(row["best_mean"]) == pytest.approx(mean + 0.01, abs=1e-12)  # max of the curve
    assert float(row["diff_from_baseline"]) == pytest.approx(mean - b.mean(), abs=1e-12)
    # Welch: t = (ma - mb) / sqrt(va/na + vb/nb), Welch-Satterthwaite degrees of freedom.
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert float(row["p_value"]) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert rows["lr=0.1"]["p_value"] == "nan"  # the baseline
    assert float(rows["lr=0.1"]["wall_time_s_mean"]) == pytest.approx(11.0)
    assert row["n"] == "3" and row["params"] == "1234" and row["seeds"] == "0 1 2"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Welch" in text and "Left out (failed or unfinished): lr=1.0,seed=0" in text
    assert (tmp_path / "out" / "report_curves.png").stat().st_size > 0
    assert (tmp_path / "out" / "report_bars.png").stat().st_size > 0


def test_report_baseline_and_metric_must_exist(tmp_path):
    _fake_sweep(tmp_path)
    rows = {r["variant"]: r for r in report.table(report.collect(tmp_path, "test/accuracy")[0],
                                                  "lr=0.01")}
    assert rows["lr=0.01"]["diff"] == 0 and not math.isnan(rows["lr=0.1"]["p_value"])
    with pytest.raises(UserError, match="--baseline 'lr=5'"):
        report.report(tmp_path, baseline="lr=5")
    with pytest.raises(UserError, match="test/miou"):
        report.report(tmp_path, metric="test/miou")
