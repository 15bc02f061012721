"""benchmarks/bench_runs.py: several bench runs' ratios side by side, round by round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_runs
from errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _run(path: Path, ours: list[float], peer: list[float]) -> str:
    """A bench JSON of one model whose convjax and best peer had these round medians."""
    runs = {"convjax[auto]": {"round_ms": ours}, "torch[compile_cl,t2]": {"round_ms": peer}}
    entry = {"model": "resnet20_cifar", "runs": runs, "best_peer": "torch[compile_cl,t2]",
             "ratio": {"convjax[auto]": sorted(ours)[1] / sorted(peer)[1]}}  # medians of 3
    path.write_text(json.dumps({"backend": "cpu", "models": [entry]}))
    return str(path)


def test_each_round_is_compared_with_the_peers_round_beside_it(tmp_path, capsys):
    first = _run(tmp_path / "bench_run1.json", [100.0, 120.0, 110.0], [100.0, 100.0, 110.0])
    second = _run(tmp_path / "bench_run2.json", [90.0, 90.0, 90.0], [100.0, 90.0, 100.0])
    table = bench_runs.summary([first, second])
    (name1, ratio1, rounds1), (name2, _, rounds2) = table["resnet20_cifar"]
    assert (name1, name2) == ("bench_run1", "bench_run2")
    assert ratio1 == pytest.approx(110 / 100)
    assert rounds1 == pytest.approx([1.0, 1.2, 1.0]) and rounds2 == pytest.approx([0.9, 1.0, 0.9])
    out = tmp_path / "runs.png"
    assert bench_runs.main([first, second, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert "rounds 1.00-1.20" in capsys.readouterr().out


def test_labels_drop_the_prefix_the_runs_share():
    assert bench_runs._labels(["train_step_amd_run1", "train_step_amd_run2"]) == ["run1", "run2"]
    assert bench_runs._labels(["alone"]) == ["alone"]


def test_a_file_that_is_not_a_bench_json_is_one_line_and_exit_status_2(tmp_path):
    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps({"steps": 800}))
    with pytest.raises(UserError, match="no 'models'"):
        bench_runs.main([str(bad), "--out", str(tmp_path / "x.png")])
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_runs",
                           str(tmp_path / "none.json"), "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a readable" in done.stderr
    assert not (tmp_path / "x.png").exists()
