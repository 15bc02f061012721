"""Does every family of the zoo learn? One short run per family on the digits set.

Each network, at a small input (the digits resized to 32x32, 64x64 for AlexNet's 11x11/4
stem) and, for the ImageNet-sized families, at a quarter of the width (`model.width`; MobileNet,
small already, at full width), trains
for 300 steps from scratch with Adam; no augmentation. The question is only whether the code
path learns (test accuracy far above chance, 10%), not which family is best: short runs on 1,437
tiny images say nothing about that.

Command:  uv run launch.py sweep --config experiments/zoo_digits.py --workdir runs/zoo_digits
Result:   test accuracy after 300 steps, seed 0, 2-core CPU:
            resnet20_cifar                       99.72%
            vgg_a, width 0.25, BatchNorm         99.44%
            densenet_bc_100_12_cifar, 4-4-4      98.89%
            lenet_keras_lecture                  96.11%
            googlenet, width 0.25                84.44%
            mobilenet_v1, width 1                83.06%  (train 98.4%: see below)
            alexnet_one_tower, width 0.25, He    95.83%
            alexnet_one_tower, width 0.25        10.00%  chance: the paper's init stalls
          AlexNet with the paper's initialisation (N(0, 0.01^2), biases 1, no normalisation)
          stays at chance for 300 steps (Adam 1e-3; SGD 0.01 + momentum gave 10.28%): the
          signal through five convs and two 1,024-wide layers of std-0.01 weights is too small
          to move in so few steps. The same network with He initialisation learns.
          MobileNet fits the training set (98.4% train accuracy over its last 100 steps) but
          generalises least: after its stride 32 the last seven layers see a 1x1 map at 32x32.
          At width 0.25 it reached 39.17%; a 900-step run of it, 68.61% (and 98.33% on the
          training images in eval mode: no BatchNorm-statistics fault); 300 steps at 64x64,
          63.89%.
"""

from training.config import base_config

FAMILIES = [
    {"model.name": "lenet_keras_lecture"},
    {"model.name": "alexnet_one_tower", "model.width": 0.25, "data.image_size": 64},
    {"model.name": "alexnet_one_tower", "model.width": 0.25, "data.image_size": 64,
     "model.init": "he"},
    {"model.name": "vgg_a", "model.width": 0.25, "model.batch_norm": True},
    {"model.name": "googlenet", "model.width": 0.25},
    {"model.name": "resnet20_cifar"},
    {"model.name": "densenet_bc_100_12_cifar", "model.blocks": (4, 4, 4)},
    {"model.name": "mobilenet_v1"},
]


def get_config():
    c = base_config()
    c.model.name = "lenet_keras_lecture"
    c.data.name = "digits"
    c.data.image_size = 32
    c.data.cache = True
    c.train.steps = 300
    c.train.batch_size = 32
    c.train.log_every_steps = 100
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.schedule.name = "cosine"
    c.schedule.warmup_steps = 20
    c.eval.every_steps = 300
    c.checkpoint.every_steps = 300
    return c


def get_sweep():
    return FAMILIES
