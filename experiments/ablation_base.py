"""The shared starting point of the ablation experiments (experiments/ablate_*.py): the digits
without augmentation, short runs, an eval every 100 steps for the learning curves. Each
ablation changes one thing of one of these configs; `get_sweep()` says which."""

from experiments.lenet5_digits import get_config as lenet5_digits


def lenet_digits(steps: int = 300):
    """LeNet-5 on the 32x32 digits (the default experiment) with Adam, without warps: the net
    memorises the training digits, so what an ablation changes shows in the test accuracy."""
    c = lenet5_digits()
    c.data.device_augment = ""
    c.train.steps = steps
    c.train.log_every_steps = 25
    c.schedule.warmup_steps = 0
    c.eval.every_steps = 100
    c.checkpoint.every_steps = steps
    return c


def vgg_digits(steps: int = 300):
    """A slim VGG-A (width 1/8: 8-16-32-32-64-64-64-64 convs, two 512 FC layers) on the 32x32
    digits: eight 3x3 convs and five downsamplings, deep enough for pooling, initialisation and
    BatchNorm to matter, and a few seconds per hundred steps on two CPU cores."""
    c = lenet_digits(steps)
    c.model.name = "vgg_a"
    with c.model.unlocked():
        del c.model["act"], c.model["pool"]
        c.model.width = 0.125
        c.model.dropout = 0.0
    return c
