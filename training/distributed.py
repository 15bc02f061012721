"""Multi-host start-up and the devices a run found.

`launch.py train --distributed` calls `jax.distributed.initialize()`, which reads SLURM, Open
MPI and TPU-pod environments by itself; `--coordinator HOST:PORT --num-processes N
--process-id I` give the same by hand (any other launcher, or several processes on one machine).
After it, `jax.devices()` spans every process, the mesh covers them all, each process feeds its
own slice of every batch and only process 0 writes the run's records.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from errors import UserError


def initialize(coordinator: str | None, num_processes: int | None,
               process_id: int | None) -> None:
    """`jax.distributed.initialize`, from the cluster's environment or the explicit flags."""
    import jax

    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise UserError("--coordinator, --num-processes and --process-id go together; give all "
                        "three, or none to let JAX read SLURM/Open MPI/TPU settings")
    if all(given) and not 0 <= process_id < num_processes:
        raise UserError(f"--process-id {process_id} must be in [0, --num-processes "
                        f"{num_processes})")
    # Cross-process collectives for CPU devices (several processes on one machine, CPU hosts);
    # accelerators use their own. Set before the backend starts, as initialize must be.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (ValueError, RuntimeError) as err:
        raise UserError(f"--distributed could not start: {' '.join(str(err).split())[:200]}; "
                        "outside SLURM/Open MPI/TPU pods give --coordinator HOST:PORT "
                        "--num-processes N --process-id I") from None


def devices_line() -> str:
    """What the run found, for its first line: '8 cpu devices in 1 process'."""
    import jax

    n, kind = jax.device_count(), jax.devices()[0].platform
    procs = jax.process_count()
    return f"{n} {kind} device{'s' * (n != 1)} in {procs} process{'es' * (procs != 1)}"


def gpu_unused_warning() -> str | None:
    """One line when an NVIDIA GPU is visible but JAX runs on the CPU, else None."""
    import jax

    visible = shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()
    if not visible or jax.default_backend() != "cpu" or os.environ.get("JAX_PLATFORMS") == "cpu":
        return None
    return ("warning: an NVIDIA GPU is visible but JAX runs on the CPU; install JAX's CUDA "
            "build with `uv sync --extra cuda`")


def prepare_data_once(c) -> None:
    """In a multi-process run, process 0 prepares an embedded dataset while the others wait:
    TFDS's preparation is not safe to run twice at once in one data directory."""
    import jax
    from jax.experimental import multihost_utils

    from data import sources

    if jax.process_count() == 1:
        return
    if jax.process_index() == 0 and sources.is_embedded(c.data.name):
        sources.prepare(c.data.name, c.data.data_dir)
    multihost_utils.sync_global_devices("convjax: dataset prepared")
