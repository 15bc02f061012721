"""Initialisation of a deep net without normalisation: the slim VGG-A (eight 3x3 convs, three
dense layers, no BatchNorm) from He (variance 2/fan_in), Glorot (2/(fan_in + fan_out)), LeCun
(1/fan_in) and "small random" N(0, 0.01^2) weights (AlexNet's), on the digits, three seeds each.
The notes' all-zeros case needs a `zeros` initialiser in models/layers.INITIALIZERS, which has
none: with every weight equal, every unit of a layer gets the same gradient and stays a copy.

Command:  uv run launch.py sweep --config experiments/ablate_init.py --workdir runs/ablate_init
          uv run launch.py report runs/ablate_init --baseline init=he
Result:   not measured yet. On the 2-core CPU shared with other jobs one run of this slim
          VGG took 17 min (4.6 min compiling), too long for the sweep in the time there
          was; the command above runs it (`--parallel 2` on an idle machine).
"""

from experiments.ablation_base import vgg_digits
from training.sweep import grid, seeds


def get_config():
    return vgg_digits(steps=300)


def get_sweep():
    return grid({"model.init": ["he", "glorot", "lecun", "normal_0.01"]}, seeds(3))
