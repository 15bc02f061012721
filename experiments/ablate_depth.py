"""Ablation 6, depth: plain against residual at the same depth, on a task where depth shows.
The sweep and its measured table are experiments/plain_vs_residual.py's.

Command:  uv run launch.py sweep --config experiments/ablate_depth.py --workdir runs/ablate_depth
"""

from experiments.plain_vs_residual import get_config, get_sweep  # noqa: F401
