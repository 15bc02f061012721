"""Pictures of 1-D signals shared by the signal tasks: one panel per signal, time in ms when the
sample rate is known (else samples), with a title per panel and optional overlaid lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def signal_panels(signals: list[np.ndarray], titles: list[str], path: Path, *,
                  sample_rate: int | None = None, overlays: list[np.ndarray] | None = None,
                  labels: tuple[str, str] = ("signal", ""), title: str = "",
                  columns: int = 2, marked: list[bool] | None = None) -> None:
    """Each (T,) or (T, C) signal in its own panel (channel 0 drawn); `overlays` in orange."""
    from matplotlib.figure import Figure

    rows = -(-len(signals) // columns)
    fig = Figure(figsize=(5.2 * columns, 1.9 * rows + 0.6), dpi=100, layout="constrained")
    for i, x in enumerate(signals):
        ax = fig.add_subplot(rows, columns, i + 1)
        x = np.asarray(x).reshape(len(x), -1)[:, 0]
        t = np.arange(len(x)) * (1000.0 / sample_rate if sample_rate else 1.0)
        ax.plot(t, x, lw=0.6, color="tab:blue", label=labels[0])
        if overlays is not None:
            ax.plot(t, np.asarray(overlays[i]).reshape(-1)[:len(x)], lw=0.6, color="tab:orange",
                    label=labels[1])
            if i == 0:
                ax.legend(fontsize=6, loc="upper right")
        ax.set_title(titles[i], fontsize=8, color="red" if marked and marked[i] else "black")
        ax.tick_params(labelsize=6)
        ax.set_xlabel("time (ms)" if sample_rate else "sample", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
