"""BatchNorm: `nnx.BatchNorm` with its normalisation written as one scale and shift per channel.

Flax normalises as (x - mean) * (scale * rsqrt(var + eps)) + bias. Under autodiff the centred
x - mean is a residual of the backward pass, so in a training step every BatchNorm writes one
more activation-sized array (ResNet-20 at batch 128: 19 of them, up to 8 MB each). Written as
x * a + b, with a = scale * rsqrt(var + eps) and b = bias - mean * a per channel (the form of
PyTorch's CPU kernel), the residual is x itself, which the layer before wrote anyway. Measured
on the 2-core CPU (benchmarks/train_step.py, runs alternating): ResNet-20's step at b128
413-425 -> 375-393 ms; ResNet-18's at 64x64 b32 unchanged (199-210 -> 200).

The variables (scale, bias, mean, var), the statistics and the running averages are
nnx.BatchNorm's, computed by Flax's own `_compute_stats`, so checkpoints, weight import and
sharding rules see no difference; the output differs from Flax's by rounding only.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from flax.nnx.module import first_from
from flax.nnx.nn import dtypes
# Flax's own pieces of nnx.BatchNorm, so the statistics cannot drift from it: the float32
# statistics with fast variance and the clip at zero, and the axes' canonical form
from flax.nnx.nn.normalization import _canonicalize_axes, _compute_stats
from jax import lax


def scale_and_shift(x, mean, var, scale, bias, reduction_axes, feature_axes, dtype, epsilon):
    """x * a + b with a = scale * rsqrt(var + epsilon), b = bias - mean * a: Flax's
    `normalization._normalize` (same arguments, same result up to rounding) in the form whose
    gradient needs x, not x - mean. `mean` and `var` have the shape of x without its
    reduction axes; `scale` and `bias` (either may be None) that of its feature axes."""
    reduction_axes = _canonicalize_axes(x.ndim, reduction_axes)
    feature_axes = _canonicalize_axes(x.ndim, feature_axes)
    stats_shape = [1 if axis in reduction_axes else n for axis, n in enumerate(x.shape)]
    feature_shape = [n if axis in feature_axes else 1 for axis, n in enumerate(x.shape)]
    a = lax.rsqrt(var + epsilon).reshape(stats_shape)
    if scale is not None:
        a = a * scale.reshape(feature_shape)
    b = -mean.reshape(stats_shape) * a
    if bias is not None:
        b = b + bias.reshape(feature_shape)
    args = [x] + [p for p in (scale, bias) if p is not None]
    return jnp.asarray(x * a + b, dtypes.canonicalize_dtype(*args, dtype=dtype))


class BatchNorm(nnx.BatchNorm):
    """`nnx.BatchNorm` (same constructor, variables and statistics) normalising by
    `scale_and_shift`."""

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        use_running_average = first_from(
            use_running_average, self.use_running_average,
            error_msg="No `use_running_average` argument was provided to BatchNorm: pass it to "
                      "the constructor or the call, or use model.train() / model.eval()")
        feature_axes = _canonicalize_axes(x.ndim, self.axis)
        reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
        scale = self.scale[...] if self.scale is not None else None
        bias = self.bias[...] if self.bias is not None else None
        x, mean, var, scale, bias = self.promote_dtype(
            (x, self.mean[...], self.var[...], scale, bias), dtype=self.dtype)
        if not use_running_average:
            mean, var = _compute_stats(
                x, reduction_axes, dtype=self.dtype, axis_name=self.axis_name,
                axis_index_groups=self.axis_index_groups,
                use_fast_variance=self.use_fast_variance, mask=mask)
            self.update_running_stats(mean, var)
        return scale_and_shift(x, mean, var, scale, bias, reduction_axes, feature_axes,
                               self.dtype, self.epsilon)

    def update_running_stats(self, mean, var) -> None:
        """One step of the running averages towards this batch's statistics, with no gradient
        through them (as nnx.BatchNorm)."""
        stop_gradient = (lax.stop_gradient if self.mean._can_update or self.var._can_update
                         else lambda v: v)
        self.mean[...] = stop_gradient(
            self.momentum * self.mean[...] + (1 - self.momentum) * mean)
        self.var[...] = stop_gradient(self.momentum * self.var[...] + (1 - self.momentum) * var)
