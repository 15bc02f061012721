"""Does augmentation help LeNet-5 on digits, and does it matter where it runs?

Three variants of the default experiment (lenet5_digits), three seeds each: no augmentation;
small random warps (rotation ±10°, scale ±10%, translation ±8%) on the device, in the compiled
step; the same warps on the host, in the Grain pipeline. No flips: a mirrored digit is another
symbol.

Command:  uv run launch.py sweep --config experiments/augment_digits.py --workdir runs/augment_digits
Result:   test accuracy, mean ± sample std over seeds 0, 1, 2 (800 steps each, 2-core CPU):
            no augmentation         97.13 ± 0.16%   (train loss 0.0018: it memorises)
            warps on the device     98.98 ± 0.16%
            warps on the host       99.07 ± 0.16%
          Augmentation removes about two thirds of the errors (10.3 -> 3.7 and 3.3 of 360).
          Host and device draw from the same distribution with different random streams;
          their 0.09-point gap is well inside one standard deviation.
"""

from experiments.lenet5_digits import get_config as default_config

WARPS = "affine(degrees=10, translate=0.08, scale=0.1)"
SEEDS = (0, 1, 2)


def get_config():
    c = default_config()
    c.data.device_augment = ""
    return c


def get_sweep():
    variants = [{"data.augment": "", "data.device_augment": ""},
                {"data.augment": "", "data.device_augment": WARPS},
                {"data.augment": WARPS, "data.device_augment": ""}]
    return [{**variant, "seed": seed} for variant in variants for seed in SEEDS]
