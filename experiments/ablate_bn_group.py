"""How many examples should BatchNorm's statistics see? Ghost BatchNorm (Hoffer et al. 2017,
`train.bn_group_size`, models/ghost_batch_norm.py) normalises each group of N consecutive examples
of the batch of 64 by that group's own mean and variance: N = 0 is the whole batch (the default),
then 32, 8 and 2. The optimiser still sees the batch of 64; only the noise of the statistics
changes. A CIFAR ResNet-8 (one block per stage) at half width (8-16-32 channels) on the 32x32
digits, SGD with momentum, one seed.

Command:  uv run launch.py sweep --config experiments/ablate_bn_group.py --workdir runs/ablate_bn_group
          uv run launch.py report runs/ablate_bn_group
Result:   seed 0, 300 steps (19,074 parameters), 3 min 20 s for the four runs on the 2-core CPU
          shared with other jobs:
            bn_group_size    test accuracy   test loss   train loss (train-mode statistics)
            0 (64, global)   98.06%          0.093       0.071
            32               98.06%          0.094       0.081
            8                98.61%          0.083       0.144
            2                96.67%          0.208       0.494
          Groups of 32 and 8 test as well as the whole batch (8 is 2 digits better of 360, inside
          one seed's noise); groups of 2 cost 1.4 points (5 digits) and fit the training digits
          far less well (train loss, measured with the groups' own statistics, 0.49 against
          0.07): a mean and a variance from two examples are noisy. Add `seeds(3)` to the grid
          for error bars.
"""

from experiments import plain_vs_residual
from training.sweep import grid


def get_config():
    """plain_vs_residual's ResNet at half width, with one block per stage and 300 steps."""
    c = plain_vs_residual.get_config()
    with c.model.unlocked():
        c.model.depths = (1, 1, 1)
    c.train.steps = 300
    c.schedule.warmup_steps = 15
    c.eval.every_steps = 100
    c.checkpoint.every_steps = 300
    return c


def get_sweep():
    return grid({"train.bn_group_size": [0, 32, 8, 2]})
