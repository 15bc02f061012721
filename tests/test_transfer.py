"""Transfer learning: a run started from another run's weights, with a new head, a frozen
backbone (parameters and BatchNorm statistics bit-identical after training), and the features
a linear probe and k-NN read."""

import jax
import numpy as np
import pytest

import models
import tasks
from errors import UserError
from training import config as config_lib, import_cli, loop, run_dir, transfer


def tiny_bn_config():
    """A one-block-per-stage ResNet-20 (BatchNorm everywhere) on 16x16 digits, 2 steps."""
    c = config_lib.base_config()
    c.model.name = "resnet20_cifar"
    with c.model.unlocked():
        c.model.width, c.model.depths = 0.25, (1, 1, 1)
    c.data.image_size = 16
    c.train.steps, c.train.batch_size, c.train.log_every_steps = 2, 16, 1
    c.eval.every_steps = c.checkpoint.every_steps = 2
    c.eval.batch_size = 64
    c.optimizer.lr = 0.1  # large steps: anything not frozen visibly moves
    return c


def source_run(path):
    """A run directory holding a freshly initialised net (as `launch.py import` writes one)."""
    c = tiny_bn_config()
    c.seed = 7
    info = tasks.DataInfo(name="digits", num_classes=10, in_channels=1)
    model = models.create(c.model.name, num_classes=10, in_channels=1, seed=c.seed,
                          **config_lib.model_options(c))
    import_cli.write_run(path, c, info, model, {"from": "test"})
    return run_dir.restore(path, c, tasks.create(c, info), "latest")[1]


def flat(tree) -> dict:
    return {transfer.path_name(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_frozen_backbone_and_its_batchnorm_stay_bit_identical(tmp_path):
    source = source_run(tmp_path / "source")
    c = tiny_bn_config()
    with c.model.unlocked():
        c.model.init_from, c.model.new_head = str(tmp_path / "source"), True
    c.train.trainable = "^head"
    loop.train(c, tmp_path / "transfer", show_progress=False)
    task = tasks.create(c, run_dir.saved_data_info(tmp_path / "transfer"))
    _, after, step = run_dir.restore(tmp_path / "transfer", c, task, "latest")
    assert step == 2
    before_p, after_p = flat(source.params), flat(after.params)
    for name, value in after_p.items():
        if name.startswith("head."):
            assert not np.array_equal(value, before_p[name]), name  # trained, and new
        else:
            np.testing.assert_array_equal(value, before_p[name], err_msg=name)
    before_s, after_s = flat(source.batch_stats), flat(after.batch_stats)
    assert before_s and all(np.array_equal(after_s[k], v) for k, v in before_s.items())


def test_labels_split_head_backbone_and_frozen():
    pattern = transfer.re.compile(r"^head|blocks\.layers\.2\.")
    assert transfer.label("head.kernel", pattern) == "head"
    assert transfer.label("blocks.layers.2.conv1.kernel", pattern) == "backbone"
    assert transfer.label("blocks.layers.1.conv1.kernel", pattern) == "frozen"
    assert transfer.label("final_norm.scale", None) == "backbone"  # not the head


def test_a_head_of_another_class_count_asks_for_new_head(tmp_path):
    small = nnx_params("lenet5", 5)
    big = nnx_params("lenet5", 10)
    with pytest.raises(UserError, match="new_head=True"):
        transfer.copy_weights(big, small, new_head=False, what="parameters", src=tmp_path)
    copied = transfer.copy_weights(big, small, new_head=True, what="parameters", src=tmp_path)
    assert flat(copied)["head.kernel"].shape == (84, 10)
    np.testing.assert_array_equal(flat(copied)["f6.kernel"], flat(small)["f6.kernel"])


def test_a_trainable_regex_matching_nothing_is_refused():
    c = config_lib.base_config()
    c.train.trainable = "^classifier"
    with pytest.raises(UserError, match="matches no parameter"):
        transfer.check_trainable(c, nnx_params("lenet5", 10))


def test_features_are_what_the_head_reads():
    model = models.create("lenet5")
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(model(x), model.head(model.features(x)), rtol=1e-6)


def test_probe_fits_linear_and_knn_on_separable_features():
    from training import probe_cli

    rng = np.random.default_rng(0)
    centres = 5 * rng.standard_normal((3, 8))
    y = np.repeat(np.arange(3), 20)
    x = centres[y] + 0.1 * rng.standard_normal((60, 8))
    assert probe_cli.linear_probe(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    assert probe_cli.knn(x[::2], y[::2], x[1::2], y[1::2], k=3) == 1.0


def nnx_params(name: str, classes: int):
    from flax import nnx

    return nnx.state(models.create(name, num_classes=classes), nnx.Param)


def test_few_shot_keeps_the_first_records_of_each_class():
    from data import few_shot

    source = [{"label": k} for k in (0, 1, 0, 2, 1, 0, 2)]
    picked = few_shot.first_per_class(source, 2)
    assert [picked[i]["label"] for i in range(len(picked))] == [0, 1, 0, 2, 1, 2]
