"""The base config every experiment starts from, and its validation.

Experiment files call `base_config()` and change what they study; the command line overrides any
field (`--config.optimizer.lr=0.1`). `validate` runs before anything is built or written, so a
mistake costs one line on stderr and no half-written run directory.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from errors import UserError

BEST_MODES = ("max", "min")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    # What is learned (tasks/): the name picks the task; the other fields are its options,
    # read by the tasks that use them.
    c.task = ml_collections.ConfigDict({
        "name": "classification",
        "loss": "",              # "" = the task's own: ce (segmentation), mse (image tasks);
                                 # also dice, ce+dice, l1
        "class_weights": (),     # per-class cross-entropy weights (segmentation), () = equal
        "scale": 3,              # super_resolution: the downscaling factor
        "sigma": 25.0,           # denoising: Gaussian noise std in 0-255 units
        "channels": "",          # image tasks: y (BT.601 luma), grey, rgb; "" = the task's own
        "corruption": "none",    # autoencoder: none, gaussian (task.sigma), masking (fraction)
        "masking_fraction": 0.25,
    })

    # The device mesh (training/mesh.py): sizes of its axes, one may be -1 (the devices left).
    # data: batch split; fsdp: batch split and state sharded; model: the large dense layers
    # split (tensor parallelism). Where each state leaf goes: training/sharding.py's RULES.
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1})

    # Fields beside `name` are passed to the model's factory as options (act, norm, ...).
    c.model = ml_collections.ConfigDict({
        "name": "lenet5",
        "init_from": "",         # a run directory (trained or imported) to start from
        "new_head": False,       # with init_from: a fresh `head` for this run's classes
    })

    c.data = ml_collections.ConfigDict({
        "name": "digits",
        "data_dir": config_dict.placeholder(str),  # else $TFDS_DATA_DIR, else ~/tensorflow_datasets
        "train_split": "train",
        "eval_split": "test",
        "image_size": 32,        # classifiers: examples are resized to image_size x image_size,
        "pad": 0,                # then get this many zero pixels on every side
        "balance": False,        # sample every class equally often (oversampling the rarer)
        "cache": False,          # decode + resize once and hold the split in memory (small sets)
        "skip_bad": False,       # folder datasets: leave out unreadable images (else stop, naming it)
        "augment": "",           # host-side ops, e.g. "random_crop(32, pad=4)|flip_lr"
        "device_augment": "",    # the same ops run in the compiled step, per-example keys
        "patch_size": 0,         # image tasks: random training patches of this side (0: whole)
        "num_workers": 0,        # Grain worker processes (0: in the main process)
        "prefetch": 2,           # batches read ahead per reading thread (one per core) or worker
        "train_per_class": 0,    # > 0: only the first N train records of each class (few-shot)
        "resize_shorter": 0,     # > 0: resize the shorter side to this (bilinear) and centre-crop
        "center_crop": 0,        #   to center_crop, instead of resizing to image_size (imported
        "mean": (),              #   weights' preprocessing); then (x - mean) / std per channel
        "std": (),
        "resize_interpolation": "bilinear",  # that resize: bilinear or bicubic (timm's weights)
        "val_split": 0.0,        # hold out this fraction of train (fixed, seed-independent) as
                                 # `val/` metrics; model selection then reads val, never test
        "train_classes": (),     # class ids the train split is restricted to; () = all
        "eval_classes": (),      # class ids the eval split is restricted to; () = all
        "classes_per_batch": 0,  # P > 0: train batches of P classes x K = batch_size / P
                                 # examples each (metric learning); 0: shuffled batches
    })

    c.train = ml_collections.ConfigDict({
        "steps": 1000,
        "batch_size": 64,        # global: the maths does not depend on the device count
        "label_smoothing": 0.0,
        "aux_loss_weight": 0.3,  # auxiliary classifiers (GoogLeNet): weight per head
        "mix": "none",           # batch mixing on device: none, mixup, cutmix
        "mix_alpha": 0.2,        # Beta(alpha, alpha) for the mixing weight
        "log_every_steps": 50,
        "adversarial": "none",   # none, fgsm, pgd: train on L-inf attacks of each batch (Madry
        "adversarial_eps": 0.1,  #   et al. 2018), budget in input units ([0, 1] pixels)
        "adversarial_steps": 7,  # PGD steps, each 2.5 eps / steps, from a random start
        "dtype": "float32",      # compute dtype: float32, bfloat16 or float16 (float32 params,
                                 # optimizer state, BatchNorm statistics: training/precision.py)
        "trainable": "",         # regex over parameter paths ("head" ...); others frozen; "" = all
        "skip_nonfinite": False,  # skip (and count) updates with a non-finite loss or gradient,
                                  # instead of stopping the run (exit 3)
        "bn_group_size": 0,      # > 0: BatchNorm statistics per group of this many consecutive
                                 # examples (ghost BN, models/ghost_batch_norm.py); 0: whole batch
        "remat": False,          # recompute each block's activations in the backward pass
                                 # instead of keeping them (models/remat.py): memory for time
    })

    c.optimizer = ml_collections.ConfigDict({
        "name": "adam",
        "lr": 1e-3,
        "momentum": 0.9,         # sgd, rmsprop
        "nesterov": False,       # sgd
        "b1": 0.9,               # adam, adamw
        "b2": 0.999,
        "weight_decay": 0.0,     # L2 for sgd/adam (coupled), decoupled for adamw; kernels only
        "grad_clip_norm": 0.0,   # 0: no clipping
        "backbone_lr_multiplier": 1.0,  # lr factor for every parameter outside `head`
        "lookahead_every": 0,    # lookahead weights (training/lookahead.py): sync every N steps
        "lookahead_alpha": 0.5,  #   moving the slow weights this fraction to the fast ones
        "lookahead_ramp": 0.0,   #   > 0: alpha falls from 1 to lookahead_alpha as (t/steps)**ramp
    })

    c.schedule = ml_collections.ConfigDict({
        "name": "cosine",
        "warmup_steps": 0,       # linear warm-up from 0 before any schedule
        "final_lr_fraction": 0.0,  # cosine/linear end at lr * this
        "boundaries": (),        # step schedule: steps where lr is multiplied by `factor`
        "factor": 0.1,
    })

    c.eval = ml_collections.ConfigDict({
        "every_steps": 500,
        "batch_size": 256,
        "prefix": "test",        # metric names: test/loss, test/accuracy, test/miou, ...
        "tta": "none",           # classifiers: none, flip, flip_translate (tasks/tta.py)
    })

    c.checkpoint = ml_collections.ConfigDict({
        "every_steps": 500,      # for safety; only those on an eval step compete for best
        "every_minutes": 0.0,    # also save when this long has passed since the last (0: off)
        "keep": 2,               # the last `keep`, plus the best by `best_metric`
        "best_metric": "",       # "" = the task's own (eval.prefix + /accuracy, /miou, /psnr)
        "best_mode": "",         # "" = the task's own (max, or min for a loss)
    })
    # Callbacks (training/callbacks.py). Early stopping watches checkpoint.best_metric.
    c.early_stopping = ml_collections.ConfigDict({
        "patience": 0,           # evaluations without improvement before stopping (0: off)
        "min_delta": 0.0,        # an improvement must beat the best by more than this
        "restore_best": True,    # end with the best evaluation's weights
    })
    c.plateau = ml_collections.ConfigDict({  # optax.contrib.reduce_on_plateau on the train loss
        "patience": 0,           # windows without improvement before lr *= factor (0: off)
        "every_steps": 50,       # a window: the train loss is averaged over this many steps
        "factor": 0.5,
        "rtol": 1e-4,            # improvement needed, relative and absolute
        "atol": 0.0,
        "cooldown": 0,           # windows after a reduction before counting again
        "min_scale": 0.0,        # the lr scale never goes below this
    })
    return c


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def validate(c: ml_collections.ConfigDict, num_devices: int) -> None:
    """Checks what can be checked without building anything; raises UserError. The names
    are checked against the registries' own tables (imported here: they pull in Optax/JAX)."""
    from data.augment.mix import KINDS as MIXES
    from data.preprocess import RESAMPLING
    from training.optim import OPTIMIZERS, SCHEDULES

    t, o, s = c.train, c.optimizer, c.schedule
    _require(t.steps > 0, f"train.steps must be positive, got {t.steps}")
    _require(t.batch_size > 0 and t.batch_size % num_devices == 0,
             f"train.batch_size={t.batch_size} is not divisible by the {num_devices} devices; "
             f"use a multiple of {num_devices}")
    g = t.bn_group_size
    _require(g >= 0, f"train.bn_group_size must be >= 0 (0: statistics over the whole batch), "
             f"got {g}")
    _require(g == 0 or t.batch_size % g == 0,
             f"train.bn_group_size={g} does not divide the global train.batch_size={t.batch_size}; "
             f"use a divisor of {t.batch_size} (or 0: statistics over the whole batch)")
    _require(c.eval.batch_size > 0 and c.eval.batch_size % num_devices == 0,
             f"eval.batch_size={c.eval.batch_size} is not divisible by the {num_devices} devices; "
             f"use a multiple of {num_devices}")
    _require(o.name in OPTIMIZERS,
             f"unknown optimizer.name {o.name!r}; choose one of {', '.join(OPTIMIZERS)}")
    _require(o.lr > 0, f"optimizer.lr must be positive, got {o.lr}")
    _require(0 <= o.lookahead_every <= t.steps,  # the last step ends on the slow weights
             f"optimizer.lookahead_every must be in [0, train.steps={t.steps}] (0: off), "
             f"got {o.lookahead_every}")
    _require(0 < o.lookahead_alpha <= 1,
             f"optimizer.lookahead_alpha must be in (0, 1], got {o.lookahead_alpha}")
    _require(o.lookahead_ramp >= 0,
             f"optimizer.lookahead_ramp must be >= 0, got {o.lookahead_ramp}")
    _require(s.name in SCHEDULES,
             f"unknown schedule.name {s.name!r}; choose one of {', '.join(SCHEDULES)}")
    _require(0 <= s.warmup_steps < t.steps,
             f"schedule.warmup_steps={s.warmup_steps} must be in [0, train.steps={t.steps})")
    _require(list(s.boundaries) == sorted(s.boundaries),
             f"schedule.boundaries {tuple(s.boundaries)} must be increasing")
    _require(c.data.resize_interpolation in RESAMPLING,
             f"unknown data.resize_interpolation {c.data.resize_interpolation!r}; choose one "
             f"of {', '.join(RESAMPLING)}")
    _require(c.eval.every_steps > 0, "eval.every_steps must be positive")
    _require(c.checkpoint.every_steps > 0, "checkpoint.every_steps must be positive")
    _require(c.checkpoint.every_minutes >= 0, "checkpoint.every_minutes must be >= 0 (0: off)")
    _require(c.checkpoint.keep >= 1, "checkpoint.keep must be at least 1")
    _require(c.checkpoint.best_mode in ("", *BEST_MODES),
             f"checkpoint.best_mode must be 'max' or 'min', got {c.checkpoint.best_mode!r}")
    _require(bool(c.data.name), "data.name is not set: this experiment has no embedded dataset; "
             "give one, e.g. --config.data.name=seg:DIR (the experiment's docstring says which)")
    _require(c.data.image_size > 0, f"data.image_size must be positive, got {c.data.image_size}")
    _require(c.data.pad >= 0, f"data.pad must be >= 0, got {c.data.pad}")
    _require(c.data.num_workers >= 0, "data.num_workers must be >= 0")
    p = c.data.classes_per_batch
    _require(p == 0 or (p >= 2 and t.batch_size % p == 0 and t.batch_size // p >= 2),
             f"data.classes_per_batch={p} must be 0 or >= 2 classes dividing train.batch_size="
             f"{t.batch_size} into at least 2 examples per class")
    _require(t.log_every_steps > 0, "train.log_every_steps must be positive")
    _validate_callbacks(c)
    _require(t.mix in MIXES, f"unknown train.mix {t.mix!r}; choose one of {', '.join(MIXES)}")
    _require(0 <= t.label_smoothing < 1, "train.label_smoothing must be in [0, 1)")
    _require(t.adversarial in ("none", "fgsm", "pgd"),
             f"unknown train.adversarial {t.adversarial!r}; choose none, fgsm or pgd")
    _require(t.dtype in ("float32", "bfloat16", "float16"),
             f"unknown train.dtype {t.dtype!r}; choose float32, bfloat16 or float16")
    tta = c.eval.get("tta", "none")  # a run saved before the field existed
    _require(tta in ("none", "flip", "flip_translate"),
             f"unknown eval.tta {tta!r}; choose none, flip or flip_translate")


def _validate_callbacks(c: ml_collections.ConfigDict) -> None:
    e, p = c.early_stopping, c.plateau
    _require(0 <= c.data.val_split < 1, f"data.val_split must be in [0, 1), got {c.data.val_split}")
    _require(e.patience >= 0 and e.min_delta >= 0,
             "early_stopping.patience and early_stopping.min_delta must be >= 0")
    if e.patience > 0:
        _require(c.data.val_split > 0, "early stopping watches a validation metric, never the "
                 "test set: set --config.data.val_split (e.g. 0.1)")
        _require(not c.checkpoint.best_metric or c.checkpoint.best_metric.startswith("val/"),
                 f"early stopping watches checkpoint.best_metric={c.checkpoint.best_metric!r}, "
                 "which must be a val/ metric (or '' for the task's own)")
    _require(p.patience >= 0 and p.every_steps > 0 and 0 < p.factor < 1,
             "plateau: patience >= 0, every_steps > 0 and 0 < factor < 1")


def best_checkpoint(c: ml_collections.ConfigDict, task) -> tuple[str, str]:
    """(metric, mode) the best checkpoint is chosen by: the config's, else the task's own; a
    metric the task does not report is a UserError here, before anything is built."""
    # With a validation split, model selection reads it and never the test set.
    prefix = "val" if c.data.val_split > 0 else c.eval.prefix
    reported = [f"{p}/{name}" for p in dict.fromkeys((prefix, c.eval.prefix))
                for name in task.metric_names()]
    metric = c.checkpoint.best_metric or f"{prefix}/{task.default_metric}"
    _require(metric in reported, f"checkpoint.best_metric {metric!r} is not a metric this run "
             f"reports (task {c.task.name}: {', '.join(reported)}); choose one of those")
    mode = c.checkpoint.best_mode or ("min" if metric.endswith("loss") else task.default_mode)
    return metric, mode


def model_options(c: ml_collections.ConfigDict) -> dict:
    """The model's factory options: every `model.*` field except the ones about where its
    weights start (name, init_from, new_head)."""
    return {k: v for k, v in c.model.to_dict().items()
            if k not in ("name", "init_from", "new_head")}
