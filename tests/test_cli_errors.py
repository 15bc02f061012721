"""A user's mistake: one line on stderr, exit status 2, no traceback, no run directory."""

import pytest

from errors import UserError
from tests.helpers import run_launch

CASES = {
    "unknown key": (["--config.train.stepz=5"], "stepz"),
    "wrong type": (["--config.train.steps=many"], "train.steps"),
    "batch not divisible": (["--config.train.batch_size=12"], "not divisible by the 8 devices"),
    "unknown dataset": (["--config.data.name=no_such_set"], "unknown dataset 'no_such_set'"),
    "unprepared dataset": (["--config.data.name=mnist"], "launch.py prepare mnist"),
    "unknown model": (["--config.model.name=lenet9"], "unknown model 'lenet9'"),
    "bad model option": (["--config.model.pool=median"], "unknown pooling 'median'"),
    "missing config file": (["--config=experiments/nope.py"], "nope.py"),
    "bad optimizer": (["--config.optimizer.name=sgdd"], "unknown optimizer.name 'sgdd'"),
}


@pytest.mark.parametrize("case", CASES)
def test_config_mistake_is_one_line_and_exit_2(case, tmp_path):
    args, expected = CASES[case]
    workdir = tmp_path / "run"
    result = run_launch("train", f"--workdir={workdir}", *args, devices=8)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not workdir.exists()


def test_workdir_that_is_not_a_run_is_left_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_launch("train", f"--workdir={tmp_path}", devices=1)
    assert result.returncode == 2 and "not a convjax run directory" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_unknown_command_exits_2():
    result = run_launch("trian")
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_model_options_the_experiment_does_not_set_can_be_given():
    """A network's own options (act, width, depths, ...) differ per network, so the command line
    may add them under `model.`; values are read as Python literals, else kept as text."""
    from training import cli, config as config_lib

    config, _ = cli.parse(["--config.model.name=resnet20_cifar", "--config.model.act=elu",
                           "--config.model.width", "0.5", "--config.model.depths=(2, 2, 2)",
                           "--config.model.batch_norm=False", "--config.model.pool=max"])
    assert config_lib.model_options(config) == {
        "act": "elu", "width": 0.5, "depths": (2, 2, 2), "batch_norm": False, "pool": "max"}
    # A field the experiment sets as text stays text: lenet5_digits sets model.act.
    config, _ = cli.parse(["--config.model.act=None"])
    assert config.model.act == "None"


def test_a_model_option_without_a_value_is_one_line(tmp_path):
    result = run_launch("train", f"--workdir={tmp_path / 'run'}", "--config.model.width")
    assert result.returncode == 2 and "--config.model.width=VALUE" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_run_saved_before_a_config_field_existed_still_resumes(tmp_path):
    """Upgrading convjax adds config fields; a saved run that lacks one ran as its default."""
    import json

    from training import config as config_lib, loop

    config = config_lib.base_config()
    saved = json.loads(config.to_json())
    del saved["data"]["balance"]          # as if saved before `data.balance` existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert loop.check_resumable(tmp_path, config) is False  # a record, no checkpoints yet
    config.data.balance = True             # not the default: the maths changed
    with pytest.raises(UserError, match="data.balance"):
        loop.check_resumable(tmp_path, config)
