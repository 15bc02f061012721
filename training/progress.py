"""Terminal progress: a live bar on a TTY, plain log lines otherwise (CI logs stay readable)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def fmt(values: dict[str, float]) -> str:
    """The headline values on one line; per-class ones (`test/iou/3`) stay in the record."""
    return "  ".join(f"{k} {v:.4f}" for k, v in values.items() if k.count("/") <= 1)


class ProgressReporter:
    def __init__(self, total_steps: int, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True, soft_wrap=True)
        self.live = enabled and sys.stderr.isatty()
        self._bar = None
        if self.live:
            self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
            self._task = self._bar.add_task("train", total=total_steps, completed=start_step,
                                            info="")
            self._bar.start()

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", highlight=False)

    def update(self, step: int, values: dict[str, float]) -> None:
        """Called every log interval with the train metrics and throughput."""
        if self.live:
            self._bar.update(self._task, completed=step, info=fmt(values))
        else:
            self.message(f"step {step}  {fmt(values)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
