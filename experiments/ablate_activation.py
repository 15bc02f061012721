"""Which activation should LeNet-5 use? sigmoid, tanh, ReLU, LeakyReLU, ELU, SELU, each with
the same initialisation (LeCun normal), optimizer and steps, three seeds each.

Trained with SGD + momentum rather than Adam: Adam rescales every gradient per parameter,
which hides the vanishing gradients of saturating units that the notes warn about.

Command:  uv run launch.py sweep --config experiments/ablate_activation.py --workdir runs/ablate_activation
          uv run launch.py report runs/ablate_activation --baseline model.act=relu
Result:   test accuracy on the 360 test digits after 300 steps, mean ± sample std over seeds
          0, 1, 2, 95% CI (t over seeds), Welch's p against ReLU (measured on a 2-core CPU
          shared with other jobs, so wall times are not speeds; picture:
          docs/ablate_activation_curves.png):
            act          final             95% CI            p vs relu
            sigmoid      0.1009 ± 0.0016   [0.0969, 0.1049]  0.000   (chance: train loss 2.30)
            tanh         0.9722 ± 0.0028   [0.9653, 0.9791]  0.447
            relu         0.9694 ± 0.0048   [0.9575, 0.9814]  (baseline)
            leaky_relu   0.9685 ± 0.0016   [0.9645, 0.9725]  0.777
            elu          0.9704 ± 0.0042   [0.9598, 0.9809]  0.815
            selu         0.9685 ± 0.0032   [0.9606, 0.9765]  0.797
          Sigmoid does not train at all in 300 SGD steps: five saturating layers pass almost no
          gradient back (its train loss stays at ln 10). Among the others no difference is
          distinguishable from seed noise (every p > 0.4, intervals overlap); they differ in
          how fast the train loss falls (SELU and ELU lowest, 0.002 and 0.004 at step 300,
          against ReLU's 0.012), not in test accuracy on this small set.
"""

from experiments.ablation_base import lenet_digits
from training.sweep import grid, seeds

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu")


def get_config():
    c = lenet_digits(steps=300)
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    return c


def get_sweep():
    return grid({"model.act": ACTIVATIONS}, seeds(3))
