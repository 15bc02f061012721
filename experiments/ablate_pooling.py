"""Is max pooling deprecated? The same slim VGG-A (experiments/ablation_base.py) with each of
its five downsamplings as 2x2 max pooling, 2x2 average pooling, or a learned 2x2 convolution of
stride 2 (Springenberg et al. 2015, "all convolutional net"), on the digits, three seeds each.

Command:  uv run launch.py sweep --config experiments/ablate_pooling.py --workdir runs/ablate_pooling
          uv run launch.py report runs/ablate_pooling
Result:   not measured yet. On the 2-core CPU shared with other jobs one run of this slim
          VGG took 17 min (4.6 min compiling), too long for the sweep in the time there
          was; the command above runs it (`--parallel 2` on an idle machine).
"""

from experiments.ablation_base import vgg_digits
from training.sweep import grid, seeds


def get_config():
    return vgg_digits(steps=300)


def get_sweep():
    return grid({"model.pool": ["max", "avg", "strided_conv"]}, seeds(3))
