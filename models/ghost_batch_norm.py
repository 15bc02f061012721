"""Ghost BatchNorm: BatchNorm statistics per group of consecutive examples, for the BN-batch-size
ablation (`--config.train.bn_group_size=N`, applied by `training/loop.py:build_model`).

Ghost BatchNorm (Hoffer, Hubara and Soudry 2017, "Train longer, generalize better") normalises
each group ("ghost batch") of `group_size` examples of a training batch by that group's own mean
and variance, so the noise of BatchNorm's statistics is that of a batch of `group_size` whatever
the batch the optimizer sees. By default convjax computes the statistics over the whole global
batch: the batch is sharded over the devices and XLA inserts the cross-device reductions, so the
maths does not depend on the device count. The global batch is split over the devices in
consecutive blocks, so with `group_size` = the per-device batch (global batch / devices) each
group is one device's examples, which reproduces the per-device statistics of frameworks without
cross-device BatchNorm (PyTorch's DistributedDataParallel without SyncBatchNorm, pmap without an
`axis_name`). Any other group size is as valid: a group may span devices, and XLA moves what it
needs.

`GhostBatchNorm` is a BatchNorm (models/batch_norm.py: an `nnx.BatchNorm`) with the same
parameters and statistics (scale, bias, mean, var), so checkpoints, sharding rules and weight
import are unchanged; only the training pass differs. `use_ghost_batch_norm` turns the
BatchNorm layers of a built model into it.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from flax.nnx.module import first_from
# Flax's own pieces of nnx.BatchNorm (the float32 statistics, fast variance, the clip at zero),
# so the two layers cannot drift apart.
from flax.nnx.nn.normalization import _canonicalize_axes, _compute_stats

from models.batch_norm import BatchNorm, scale_and_shift


def check_group_size(group_size: int) -> int:
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"GhostBatchNorm group_size must be a positive int, got {group_size!r}")
    return group_size


class GhostBatchNorm(BatchNorm):
    """BatchNorm whose training statistics are those of each group of `group_size`
    consecutive examples (the first axis) rather than of the whole batch.

    Training (`use_running_average=False`): the batch (its size a multiple of `group_size`, else
    ValueError) is split into consecutive groups; each group is normalised by its own mean and
    biased variance over the batch and spatial axes (every axis but `axis`, the features), then
    scaled and shifted by the one shared `scale` and `bias`. The running statistics take one
    step per call, with nnx.BatchNorm's momentum convention, towards the average over groups of
    the group statistics:

        mean <- momentum * mean + (1 - momentum) * mean_g(group mean)
        var  <- momentum * var  + (1 - momentum) * mean_g(group variance)

    This is Keras's convention (`BatchNormalization(virtual_batch_size=...)`, whose source notes
    that it differs little from the paper's Algorithm 1, where each ghost batch moves the
    averages in turn), and the same as keeping one running average per group and averaging them
    at evaluation, as cifar10-fast's PyTorch GhostBatchNorm does (with PyTorch's unbiased
    variance). Both of those take strided groups (examples i, i + G, ...); the groups here are
    consecutive, as in the paper and as the devices hold them. The averaged group mean is the
    batch mean, so the running mean is global BatchNorm's; the running variance is the
    within-group variance the network was trained on, smaller than the batch's by the spread of
    the group means.

    Evaluation (`use_running_average=True`) is exactly BatchNorm's. With `group_size` equal
    to the batch it is BatchNorm in training too (to rounding: the reductions differ in shape).
    """

    def __init__(self, num_features: int, *, group_size: int, **batch_norm_kwargs):
        super().__init__(num_features, **batch_norm_kwargs)
        self.group_size = check_group_size(group_size)

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        use_running_average = first_from(
            use_running_average, self.use_running_average,
            error_msg="No `use_running_average` argument was provided to GhostBatchNorm: pass it "
                      "to the constructor or the call, or use model.train() / model.eval()")
        if use_running_average:
            return super().__call__(x, use_running_average=True, mask=mask)

        batch = x.shape[0]
        if batch % self.group_size:
            raise ValueError(f"GhostBatchNorm: a batch of {batch} examples does not split into "
                             f"groups of group_size={self.group_size}; use a batch that is a "
                             f"multiple of {self.group_size}")
        feature_axes = _canonicalize_axes(x.ndim, self.axis)
        if 0 in feature_axes:
            raise ValueError("GhostBatchNorm groups the first (batch) axis, which cannot be its "
                             f"feature axis (axis={self.axis})")
        # (batch, ...) -> (groups, group_size, ...): axis 0 now counts groups, and the statistics
        # reduce over every axis but it and the (shifted) feature axes.
        grouped = x.reshape(batch // self.group_size, self.group_size, *x.shape[1:])
        feature_axes = tuple(a + 1 for a in feature_axes)
        reduction_axes = tuple(a for a in range(1, grouped.ndim) if a not in feature_axes)
        if mask is not None:
            mask = jnp.broadcast_to(mask, x.shape).reshape(grouped.shape)

        scale = self.scale[...] if self.scale is not None else None
        bias = self.bias[...] if self.bias is not None else None
        grouped, _, _, scale, bias = self.promote_dtype(
            (grouped, self.mean[...], self.var[...], scale, bias), dtype=self.dtype)
        mean, var = _compute_stats(
            grouped, reduction_axes, dtype=self.dtype, axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups, use_fast_variance=self.use_fast_variance,
            mask=mask)  # each (groups, features)

        self.update_running_stats(mean.mean(axis=0), var.mean(axis=0))
        y = scale_and_shift(grouped, mean, var, scale, bias, reduction_axes, feature_axes,
                            self.dtype, self.epsilon)
        return y.reshape(x.shape)


def use_ghost_batch_norm(model: nnx.Module, group_size: int) -> int:
    """Turns every `nnx.BatchNorm` in the built `model` into a `GhostBatchNorm` of `group_size`,
    in place; returns how many it turned (0: the model has no BatchNorm).

    The networks build their BatchNorm in several places (models/layers.py's `make_norm`,
    layers_1d.py, dcgan.py, airbench.py), so the option converts after building rather than
    threading a group size through every factory. Each layer changes class where it stands
    (`__class__` reassignment, GhostBatchNorm adds no storage of its own): it keeps its own
    Variables, its place in any parent (an attribute, a list, an nnx.Sequential) and any sharing,
    where building a new layer and re-attaching it would have to know every kind of container.
    The state (Params and BatchStats, their paths and shapes) is untouched; only the graph
    definition, which nnx.split takes afterwards, names the new class.
    """
    check_group_size(group_size)
    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    for layer in layers:
        if type(layer) not in (nnx.BatchNorm, BatchNorm, GhostBatchNorm):  # keep no other __call__
            raise TypeError(f"cannot make {type(layer).__name__} (a BatchNorm subclass) ghost")
        layer.__class__ = GhostBatchNorm
        layer.group_size = group_size
    return len(layers)
