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


def vibration_classes(path: Path, index: int = 0) -> None:
    """One test signal of each class of the `vibration` set: the waveform (first 50 ms) and
    the envelope spectrum (band-passed 1.5-5 kHz, Hilbert magnitude), the fault frequencies
    of its shaft speed marked: docs/vibration_classes.png."""
    from matplotlib.figure import Figure
    from scipy import signal as scipy_signal

    from data import vibration

    rate = vibration.SAMPLE_RATE
    fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
    b, a = scipy_signal.butter(4, [1500, 5000], btype="bandpass", fs=rate)
    for row, kind in enumerate(vibration.CLASSES):
        x, p = vibration.signal("test", 4 * index + row)
        t = np.arange(len(x)) / rate * 1000
        ax = fig.add_subplot(4, 2, 2 * row + 1)
        shown = t < 50
        ax.plot(t[shown], x[shown], lw=0.6)
        ax.set_title(f"{kind}: {p.rpm:.0f} rpm, noise sigma {p.noise:.2f}", fontsize=8)
        ax.set_xlabel("time (ms)", fontsize=7)
        ax.tick_params(labelsize=6)
        envelope = np.abs(scipy_signal.hilbert(scipy_signal.filtfilt(b, a, x)))
        power = np.abs(np.fft.rfft(envelope - envelope.mean()))
        f = np.fft.rfftfreq(len(x), 1 / rate)
        ax = fig.add_subplot(4, 2, 2 * row + 2)
        keep = f < 600
        ax.plot(f[keep], power[keep], lw=0.8)
        for name, order in vibration.fault_orders().items():
            if name != "cage":
                ax.axvline(order * p.shaft_hz, ls="--", lw=0.7, color="tab:red" if name == kind
                           else "tab:grey")
                ax.text(order * p.shaft_hz, ax.get_ylim()[1] * 0.9, name, fontsize=6)
        ax.set_title(f"{kind}: envelope spectrum (BPFI, BPFO, BSF marked)", fontsize=8)
        ax.set_xlabel("frequency (Hz)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("the embedded vibration set: one test signal per class (12 kHz, 2,048 samples)",
                 fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
