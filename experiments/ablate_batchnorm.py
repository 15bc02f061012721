"""What does BatchNorm buy? The slim VGG-A with and without BatchNorm after every conv, at
Adam's default step (1e-3) and at a ten times larger one (1e-2), on the digits, three seeds each.

Command:  uv run launch.py sweep --config experiments/ablate_batchnorm.py --workdir runs/ablate_batchnorm
          uv run launch.py report runs/ablate_batchnorm
Result:   not measured yet. On the 2-core CPU shared with other jobs one run of this slim
          VGG took 17 min (4.6 min compiling), too long for the sweep in the time there
          was; the command above runs it (`--parallel 2` on an idle machine).
"""

from experiments.ablation_base import vgg_digits
from training.sweep import grid, seeds


def get_config():
    c = vgg_digits(steps=300)
    c.optimizer.lr = 1e-3
    return c


def get_sweep():
    return grid({"model.norm": ["none", "batch"], "optimizer.lr": [1e-3, 1e-2]}, seeds(3))
