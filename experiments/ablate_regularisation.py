"""Regularisation of the slim VGG-A on the digits: none, L2 weight decay (coupled, on kernels),
dropout 0.5 before each hidden dense layer, early stopping (patience 2 evaluations of the
validation accuracy, best weights restored), and random warps of the training digits, three
seeds each. Every variant holds out the same 10% of the training digits (`data.val_split`), so
all train on the same 1,293 digits and early stopping never sees the test set. L1 is not in
training/optim.py's optimizers (it would be `optax.add_decayed_weights` of sign(w)).

Command:  uv run launch.py sweep --config experiments/ablate_regularisation.py --workdir runs/ablate_regularisation
          uv run launch.py report runs/ablate_regularisation
Result:   not measured yet. On the 2-core CPU shared with other jobs one run of this slim
          VGG took 17 min (4.6 min compiling), too long for the sweep in the time there
          was; the command above runs it (`--parallel 2` on an idle machine).
"""

from experiments.ablation_base import vgg_digits
from training.sweep import grid, seeds

WARPS = "affine(degrees=10, translate=0.08, scale=0.1)"
VARIANTS = [{"model.dropout": 0.0},
            {"optimizer.weight_decay": 5e-4},
            {"model.dropout": 0.5},
            {"early_stopping.patience": 2},
            {"data.device_augment": WARPS}]


def get_config():
    c = vgg_digits(steps=300)
    c.data.val_split = 0.1
    c.eval.every_steps = 50
    return c


def get_sweep():
    return grid(VARIANTS, seeds(3))
