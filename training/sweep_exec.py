"""Running a sweep's runs: one after another here, N at a time in subprocesses, or as a SLURM job
array through submitit. Every way runs `run_one(sweep_dir, name)`, which rebuilds the run's
config from the sweep's manifest, trains (or resumes, or skips) it, and leaves its outcome in
`status/NAME.json`, so the sweep reads outcomes the same way whatever ran them.

`python -m training.sweep_exec SWEEP_DIR NAME` is the subprocess entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from errors import UserError, one_line

ROOT = Path(__file__).resolve().parent.parent
STATUS, LOGS = "status", "logs"


def run_one(sweep_dir: str, name: str) -> dict:
    """Trains the run `name` of the sweep in `sweep_dir`; returns and records its outcome:
    done, skipped (finished before), stopped (at --stop_after) or failed (with its error)."""
    from training import cli, sweep

    root = Path(sweep_dir)
    manifest = sweep.read_manifest(root)
    run = next(r for r in manifest["runs"] if r["name"] == name)
    began = time.time()
    try:
        config, _ = cli.parse(manifest["train_argv"], prog="launch.py sweep")
        config = sweep.apply(config, run["overrides"])
        workdir = Path(run["dir"])
        if sweep.is_finished(workdir, config):
            outcome = {"status": "skipped"}
        else:
            from training import loop

            summary = loop.train(config, workdir, stop_after=manifest["stop_after"],
                                 show_progress=False)
            finished = summary["steps"] == config.train.steps or summary.get("early_stopped")
            outcome = {"status": "done" if finished else "stopped"}
            if "stopped_by" in summary:  # SIGTERM/SIGINT: the loop saved a checkpoint and returned
                outcome["stopped_by"] = summary["stopped_by"]
    except Exception as err:  # noqa: BLE001: one run's failure must not stop the sweep
        log = root / LOGS / f"{name}.traceback.txt"
        log.parent.mkdir(exist_ok=True)
        log.write_text(traceback.format_exc())
        kind = "" if isinstance(err, UserError) else f"{type(err).__name__}: "
        outcome = {"status": "failed", "error": kind + one_line(err), "traceback": str(log)}
    outcome["seconds"] = time.time() - began
    write_status(root, name, outcome)
    return outcome


def write_status(root: Path, name: str, outcome: dict) -> None:
    path = root / STATUS / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2) + "\n")


def read_status(root: Path, name: str) -> dict | None:
    path = root / STATUS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def execute(root: Path, flags) -> dict[str, dict]:
    """{run name: outcome} after running every run of the manifest in `root`."""
    from training import sweep

    names = [run["name"] for run in sweep.read_manifest(root)["runs"]]
    for name in names:  # a status left by an earlier sweep says nothing about this one
        (root / STATUS / f"{name}.json").unlink(missing_ok=True)
    if flags.executor == "slurm":
        return submit(root, names, cluster="slurm", parallel=flags.parallel, flags=flags)
    if flags.parallel == 1:
        return run_serial(root, names)
    return run_parallel(root, names, flags.parallel)


def run_serial(root: Path, names: list[str]) -> dict[str, dict]:
    """One run after another in this process; a signal that stopped a run stops the sweep."""
    outcomes = {}
    for i, name in enumerate(names, 1):
        outcomes[name] = _announced(i, len(names), name, lambda n=name: run_one(str(root), n))
        if "stopped_by" in outcomes[name]:
            for rest in names[i:]:
                outcomes[rest] = {"status": "stopped", "stopped_by": outcomes[name]["stopped_by"]}
            break
    return outcomes


def _announced(i: int, n: int, name: str, run) -> dict:
    print(f"[{i}/{n}] {name}", flush=True)
    outcome = run()
    print(f"[{i}/{n}] {name}: {outcome['status']}"
          + (f": {outcome['error']}" if outcome["status"] == "failed" else ""), flush=True)
    return outcome


# --- N local runs at once ---------------------------------------------------------------------

def resource_slots(parallel: int) -> list[dict[str, str | list[int]]]:
    """How the machine is split between `parallel` runs: each slot's CPU cores (disjoint while
    there are enough) and, on a GPU host, its GPUs. XLA sizes its CPU thread pool from the
    cores the process may run on, so pinning a run to its cores splits the threads too."""
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // parallel)
    slots = []
    for k in range(parallel):
        mine = cores[k * per:(k + 1) * per]
        mine = mine if len(mine) == per else [cores[k % len(cores)]]  # more runs than cores
        env = {"OMP_NUM_THREADS": str(len(mine)), "MKL_NUM_THREADS": str(len(mine)),
               "OPENBLAS_NUM_THREADS": str(len(mine))}
        gpus = _gpu_ids()
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus[k::parallel]))
        slots.append({"cores": mine, "env": env})
    return slots


def _gpu_ids() -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(i) for i in visible.split(",") if i.strip().isdigit()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.stdout.split()] if out.returncode == 0 else []


def run_parallel(root: Path, names: list[str], parallel: int) -> dict[str, dict]:
    """Runs `names` as subprocesses, `parallel` at a time, each on its slot's resources."""
    slots = resource_slots(parallel)
    free, running, outcomes = list(range(parallel)), {}, {}
    pending = list(enumerate(names, 1))
    (root / LOGS).mkdir(exist_ok=True)
    while pending or running:
        while pending and free:
            (i, name), slot = pending.pop(0), free.pop(0)
            running[_spawn(root, name, slots[slot])] = (i, name, slot)
            print(f"[{i}/{len(names)}] {name} (cores {slots[slot]['cores']})", flush=True)
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None]:
            i, name, slot = running.pop(proc)
            free.append(slot)
            outcomes[name] = read_status(root, name) or {
                "status": "failed", "error": f"exit status {proc.returncode} without an "
                f"outcome; see {root / LOGS / (name + '.log')}"}
            print(f"[{i}/{len(names)}] {name}: {outcomes[name]['status']}"
                  + (f": {outcomes[name]['error']}" if outcomes[name]["status"] == "failed"
                     else ""), flush=True)
    return {name: outcomes[name] for name in names}


def _spawn(root: Path, name: str, slot: dict) -> subprocess.Popen:
    log = open(root / LOGS / f"{name}.log", "w")
    env = {**os.environ, **slot["env"], "PYTHONPATH": str(ROOT)}
    cores = slot["cores"]
    return subprocess.Popen([sys.executable, "-m", "training.sweep_exec", str(root), name],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: os.sched_setaffinity(0, cores))


# --- SLURM (or submitit's local executor) ------------------------------------------------------

def submit(root: Path, names: list[str], *, cluster: str, parallel: int, flags=None) -> dict:
    """Submits the runs as one job array and waits for it. `cluster="local"` is submitit's own
    local executor (subprocesses on this machine): the same path without a cluster."""
    import submitit

    if cluster == "slurm" and not _has_sbatch():
        raise UserError("--executor slurm needs SLURM's sbatch on this machine's PATH; run on a "
                        "login node, or use --executor local")
    executor = submitit.AutoExecutor(folder=root / "submitit", cluster=cluster)
    params = {"timeout_min": getattr(flags, "slurm_time_min", 60), "name": root.name,
              "slurm_array_parallelism": parallel,
              "cpus_per_task": getattr(flags, "slurm_cpus_per_run", 2)}
    if getattr(flags, "slurm_partition", ""):
        params["slurm_partition"] = flags.slurm_partition
    if getattr(flags, "slurm_gpus_per_run", 0):
        params["gpus_per_node"] = flags.slurm_gpus_per_run
    executor.update_parameters(**params)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)  # jobs import convjax
    jobs = executor.map_array(run_one, [str(root)] * len(names), names)
    print(f"submitted {len(jobs)} runs as job array {jobs[0].job_id.split('_')[0]} "
          f"({cluster}); waiting (runs continue if this process stops)", flush=True)
    outcomes = {}
    for name, job in zip(names, jobs):
        try:
            outcomes[name] = job.result()
        except Exception as err:  # noqa: BLE001: a job killed by the scheduler, say
            outcomes[name] = read_status(root, name) or {"status": "failed",
                                                         "error": one_line(err)}
        print(f"{name}: {outcomes[name]['status']}"
              + (f": {outcomes[name]['error']}" if outcomes[name]["status"] == "failed" else ""),
              flush=True)
    return outcomes


def _has_sbatch() -> bool:
    import shutil

    return shutil.which("sbatch") is not None


if __name__ == "__main__":
    outcome = run_one(sys.argv[1], sys.argv[2])
    sys.exit(1 if outcome["status"] == "failed" else 0)
