"""`launch.py eval --workdir RUN [--checkpoint best|latest|STEP] [--config.data.FIELD=VALUE ...]`:
evaluates a trained run on its eval split, or on another dataset, prints the task's metrics and
writes them to `RUN/eval-<dataset>.json`, with the task's picture of the first examples in
`RUN/eval-<dataset>_samples.png`.

`--config.` overrides change how the data is read (`--config.data.name=images:/path/set14
--config.data.eval_split=train`) or evaluated (`--config.eval.batch_size=8`); the network and
the task's own fields are the run's, so the metrics mean what they meant in training.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from errors import UserError, one_line


def own_flags(argv: list[str], *names: str) -> tuple[argparse.Namespace, list[str]]:
    """`--workdir`, `--checkpoint` and `names`; the rest must be `--config.FIELD=VALUE`."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--checkpoint", default="best")
    for name in names:
        parser.add_argument(f"--{name}", required=True)
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{one_line(err)}; see --help") from None
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        raise UserError(f"unknown argument {bad[0]!r}; see --help")
    return args, rest


def apply_overrides(c, overrides: list[str], allowed: tuple[str, ...]):
    """`--config.SECTION.FIELD=VALUE` set on `c`, type-checked by ml_collections' flags."""
    from absl import flags
    from ml_collections import config_flags

    for text in overrides:
        match = re.fullmatch(r"--config\.(\w+)\.\w+(=.*)?", text, re.DOTALL)
        if match is None or match[1] not in allowed:
            raise UserError(f"{text.split('=')[0]}: only --config.{{{','.join(allowed)}}}.FIELD "
                            "can change here (the network and task are the run's)")
    fv = flags.FlagValues()
    # sys_argv: config_flags reads the overrides from it (default: the real sys.argv).
    config_flags.DEFINE_config_dict("config", c, flag_values=fv, lock_config=True,
                                    sys_argv=["launch.py", *overrides])
    try:
        fv(["launch.py", *overrides])
        return fv.config
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"bad override: {one_line(err)}") from None


def dataset_tag(name: str) -> str:
    """A file-name form of a dataset name: `images:/a/set14` -> `images_set14`."""
    kind, _, rest = name.partition(":")
    tag = f"{kind}_{Path(rest.rstrip('/')).name}" if rest and "/" in rest else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    args, rest = own_flags(argv)
    from training import evaluation, run_dir

    workdir = Path(args.workdir)
    c = apply_overrides(run_dir.load_config(workdir), rest, allowed=("data", "eval"))
    tag = dataset_tag(c.data.name)
    values, step = evaluation.evaluate_run(workdir, c, args.checkpoint,
                                           samples=workdir / f"eval-{tag}_samples.png")
    out = workdir / f"eval-{tag}.json"
    record = {"step": step, "checkpoint": args.checkpoint, "dataset": c.data.name,
              "split": c.data.eval_split, "metrics": values}
    out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in values)
    print(f"{c.data.name} {c.data.eval_split}, checkpoint {args.checkpoint} (step {step}):")
    print("\n".join(f"  {k:<{width}} {v:.4f}" for k, v in values.items()))
    print(f"wrote {out}")
    return 0
