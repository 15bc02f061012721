"""Fully connected against convolutional, as the notes compare them: the introductory FFNN
(784 > 225 > 144 > 10, 210,240 weights) against the notes' small CNN (9@5x5 > pool > 16@5x5 >
pool > 10, 11,665 weights) on the same 28x28 digits, the same optimizer and the same number of
steps. The CNN has more signals (784, 7,056, 3,136 values) and 18x fewer weights: which one
generalises?

Command:  uv run launch.py sweep --config experiments/mlp_vs_cnn_digits.py --workdir runs/mlp_vs_cnn
          (one network: uv run launch.py train --config experiments/mlp_vs_cnn_digits.py
           --config.model.name=mlp)
Result:   test accuracy over seeds 0, 1, 2 (600 steps each, Adam 1e-3 cosine, 2-core CPU):
            mlp          210,619 parameters   96.94 ± 0.00%  (96.94 / 96.94 / 96.94), test loss 0.098
            lecture_cnn   11,700 parameters   96.76 ± 0.16%  (96.67 / 96.94 / 96.67), test loss 0.092
          On these centred, upscaled 8x8 digits the FFNN matches the CNN with 18x its weights:
          with no shifts to be equivariant to, weight sharing buys parameters, not accuracy.
"""

from training.config import base_config

SEEDS = (0, 1, 2)


def get_config():
    c = base_config()
    c.model.name = "lecture_cnn"
    c.data.name = "digits"
    c.data.image_size = 28       # the notes' MNIST input size
    c.data.cache = True
    c.train.steps = 600
    c.train.batch_size = 64
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 30
    c.eval.every_steps = 300
    c.checkpoint.every_steps = 600
    return c


def get_sweep():
    return [{"model.name": name, "seed": seed}
            for name in ("mlp", "lecture_cnn") for seed in SEEDS]
