"""`curves.png`: a run's logged metrics against steps, one panel per quantity.

Read back from `metrics.jsonl`, so a resumed run's picture covers the whole run. Train and eval
values of the same quantity share a panel (train/loss beside test/loss); throughput and
per-class values are left out (per-class IoU has its own lines in the record).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

SKIPPED = ("steps_per_s",)


def import_in_background() -> None:
    """Imports matplotlib on a daemon thread while the run trains: the end-of-run pictures
    would otherwise wait for it after the last step (~0.6 s on 2 cores), while the host thread
    of the train loop mostly waits on the device."""
    threading.Thread(target=_import_matplotlib, daemon=True).start()


def _import_matplotlib() -> None:
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _series(path: Path) -> dict[str, tuple[list[int], list[float]]]:
    series: dict[str, tuple[list[int], list[float]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for name, value in row.items():
            if name == "step" or name in SKIPPED or name.count("/") != 1:
                continue
            steps, values = series.setdefault(name, ([], []))
            steps.append(row["step"])
            values.append(value)
    return series


def curves(metrics_path: Path, out: Path, title: str = "") -> None:
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    series = _series(metrics_path)
    quantities = sorted({name.split("/", 1)[1] for name in series},
                        key=lambda q: (q != "loss", q))
    cols = min(3, max(1, len(quantities)))
    rows = math.ceil(len(quantities) / cols) or 1
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=100, layout="constrained")
    for i, quantity in enumerate(quantities):
        ax = fig.add_subplot(rows, cols, i + 1)
        for name in sorted(n for n in series if n.split("/", 1)[1] == quantity):
            steps, values = series[name]
            ax.plot(steps, values, marker="o" if len(steps) < 12 else None, ms=3,
                    label=name.split("/", 1)[0])
        ax.set_xlabel("step")
        ax.set_ylabel(quantity)
        if quantity == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out)
