"""`launch.py reproduce RUN_DIR [--workdir NEW]`: trains a run again from its record and says
whether the final weights' fingerprint matches.

The record (training/record.py) holds the resolved config (with its seed), the environment
(git commit, dirty diff, package versions, devices) and the summary with `params_sha256`. The
rerun uses the recorded config and steps; before it starts, every difference between the
recorded environment and this one is printed as a warning, since each can change the float
rounding (and so the fingerprint) without being a bug. Exit status 0 when the fingerprint
matches, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from errors import UserError


def _read(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent} has no {path.name}; reproduce needs a finished run "
                        "directory that `launch.py train` wrote")
    return json.loads(path.read_text())


def environment_differences(recorded: dict, now: dict) -> list[str]:
    """One line per difference that can change the result: commit, dirty diff, packages,
    Python, backend and device count."""
    out = []
    if recorded.get("git_commit") != now.get("git_commit"):
        out.append(f"git commit differs: recorded {recorded.get('git_commit')}, "
                   f"now {now.get('git_commit')}")
    if recorded.get("git_diff", "") != now.get("git_diff", ""):
        out.append("uncommitted changes differ from the recorded dirty diff "
                   f"(recorded {'dirty' if recorded.get('git_dirty') else 'clean'}, "
                   f"now {'dirty' if now.get('git_dirty') else 'clean'})")
    old, new = recorded.get("packages", {}), now.get("packages", {})
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            out.append(f"package {name}: recorded {old.get(name)}, now {new.get(name)}")
    for key in ("python", "backend"):
        if recorded.get(key) != now.get(key):
            out.append(f"{key}: recorded {recorded.get(key)}, now {now.get(key)}")
    if len(recorded.get("devices", [])) != len(now.get("devices", [])):
        out.append(f"device count: recorded {len(recorded.get('devices', []))}, "
                   f"now {len(now.get('devices', []))}")
    return out


def reproduce(run_dir: Path, workdir: Path | None = None) -> dict:
    """Reruns `run_dir` into `workdir`; returns {"match", "recorded", "reproduced", "workdir",
    "warnings"}."""
    from training import loop, record, run_dir as run_dir_lib

    summary = _read(run_dir / "summary.json")
    recorded_env = _read(run_dir / "environment.json")
    config = run_dir_lib.load_config(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = workdir or run_dir.parent / f"{run_dir.name}.reproduce-{stamp}"
    if workdir.resolve() == run_dir.resolve():
        raise UserError("--workdir must differ from RUN_DIR: reproduce trains a new run")
    if workdir.exists() and any(workdir.iterdir()):
        raise UserError(f"--workdir {workdir} is not empty; give a new directory")
    warnings = environment_differences(recorded_env, record.environment())
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    stop_after = summary["steps"] if summary["steps"] < config.train.steps else None
    rerun = loop.train(config, workdir, stop_after=stop_after, show_progress=False)
    recorded, reproduced = summary.get("params_sha256"), rerun["params_sha256"]
    return {"match": recorded == reproduced, "recorded": recorded, "reproduced": reproduced,
            "workdir": str(workdir), "warnings": warnings}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="launch.py reproduce",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the rerun goes (default: RUN_DIR.reproduce-TIMESTAMP)")
    args = parser.parse_args(argv)
    result = reproduce(args.run_dir, args.workdir)
    verdict = "matches" if result["match"] else "DIFFERS"
    print(f"weights fingerprint {verdict}: recorded {result['recorded']}, reproduced "
          f"{result['reproduced']} ({result['workdir']})")
    if not result["match"] and result["warnings"]:
        print("the environment differs from the record (warnings above), which can explain it")
    return 0 if result["match"] else 1
