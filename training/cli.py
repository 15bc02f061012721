"""`launch.py train [--config FILE] [--workdir DIR] [--config.FIELD=VALUE ...] [--stop_after N]
[--distributed [--coordinator HOST:PORT --num-processes N --process-id I]]`.

Flags are parsed by absl + ml_collections' config_flags (the library's own override syntax and
type checks); every parsing mistake becomes a one-line UserError. `model.*` fields are the
network's own options (act, norm, width, depths, ...) and differ per network, so one the
experiment file does not set may still be given: `--config.model.act=elu`.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from errors import UserError, one_line
from training import startup

DEFAULT_EXPERIMENT = "experiments/lenet5_digits.py"
ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str], prog: str = "launch.py train"):
    """(config, flag values) from the command line, or a UserError naming the mistake."""
    fv = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "run directory (resumed if it holds a run)",
                        flag_values=fv)
    flags.DEFINE_integer("stop_after", None, "stop after this step, as if preempted",
                         flag_values=fv)
    flags.DEFINE_bool("distributed", False, "multi-host: call jax.distributed.initialize() first",
                      flag_values=fv)
    flags.DEFINE_string("coordinator", None, "with --distributed: HOST:PORT of process 0",
                        flag_values=fv)
    flags.DEFINE_integer("num_processes", None, "with --distributed: how many processes",
                         flag_values=fv)
    flags.DEFINE_integer("process_id", None, "with --distributed: this process's index",
                         flag_values=fv)
    argv, model_options = _split_model_options([_flag_spelling(a) for a in argv])
    try:
        # sys_argv: config_flags reads the overrides from it (default: the real sys.argv).
        config_flags.DEFINE_config_file(
            "config", str(ROOT / DEFAULT_EXPERIMENT), "experiment file (a get_config() module)",
            flag_values=fv, lock_config=True, sys_argv=[prog, *argv])
        if "--help" in argv or "-h" in argv:
            print(__doc__.strip() + "\n\n" + fv.get_help())
            raise SystemExit(0)
        fv([prog, *argv])
        config = fv.config  # overrides are applied lazily, on first access
        with config.unlocked():
            for field, text in model_options.items():
                # A string field keeps the text as given; ConfigDict refuses another type.
                is_text = isinstance(config.model.get(field), str)
                config.model[field] = text if is_text else _literal(text)
        config.to_dict()
    except flags.Error as err:
        raise UserError(one_line(err)) from None
    except (AttributeError, KeyError, TypeError, ValueError, OSError) as err:
        raise UserError(f"bad --config or override: {one_line(err)}") from None
    return config, fv


# The multi-host flags are spelled as JAX's and SLURM's documentation spell them; absl's names
# take underscores.
HYPHENATED = {"--num-processes": "--num_processes", "--process-id": "--process_id"}


def _flag_spelling(arg: str) -> str:
    name, eq, value = arg.partition("=")
    return HYPHENATED.get(name, name) + eq + value


def _split_model_options(argv: list[str]) -> tuple[list[str], dict]:
    """(the other arguments, {field: text}) of `--config.model.FIELD=VALUE` or `... VALUE`.

    config_flags cannot add a field its config lacks, and a model option is often absent from
    the experiment file, so these are taken out and set on the loaded config.
    """
    rest, options, i = [], {}, 0
    while i < len(argv):
        match = re.fullmatch(r"--config\.model\.(\w+)(?:=(.*))?", argv[i], re.DOTALL)
        if match is None or match[1] == "name":
            rest.append(argv[i])
            i += 1
            continue
        if match[2] is None and i + 1 >= len(argv):
            raise UserError(f"{argv[i]} needs a value: {argv[i]}=VALUE")
        text = match[2] if match[2] is not None else argv[i + 1]
        options[match[1]] = text
        i += 1 if match[2] is not None else 2
    return rest, options


def _literal(text: str):
    """A Python literal where the text is one (0.5, True, (2, 2, 2), None), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def default_workdir(config_path: str, model: str) -> Path:
    name = Path(config_path).stem
    return ROOT / "runs" / f"{name}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def main(argv: list[str]) -> int:
    config, fv = parse(argv)
    if fv.distributed:
        from training import distributed

        distributed.initialize(fv.coordinator, fv.num_processes, fv.process_id)
    elif fv.coordinator or fv.num_processes is not None or fv.process_id is not None:
        raise UserError("--coordinator, --num-processes and --process-id need --distributed")
    with startup.imports_without_collection():
        from training import loop  # after parsing: `--help` and bad flags answer without jax

    if fv.stop_after is not None and fv.stop_after < 1:
        raise UserError(f"--stop_after must be a step >= 1, got {fv.stop_after}")
    workdir = Path(fv.workdir) if fv.workdir else default_workdir(fv["config"].config_filename,
                                                                  config.model.name)
    from training.health import NonFiniteError

    try:
        loop.train(config, workdir, stop_after=fv.stop_after)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0
