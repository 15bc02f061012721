"""A WaveNet (van den Oord et al. 2016) and its two generators: naive and with activation
queues ("Fast WaveNet", Paine et al. 2016).

The net. Input (B, T) int mu-law codes (data/mu_law.py), output (B, T, K) logits, position t
predicting code t+1 (registry output "sample_logits"). A causal convolution (kernel 2) of the
codes' one-hot vectors, then `stacks` x `layers_per_stack` residual blocks with dilations
1, 2, 4, ..., 2^(layers_per_stack-1) (1 ... 512 for 10 layers), each

    z = tanh(W_f * x) . sigmoid(W_g * x)          (the gated unit; * a dilated causal conv)
    x <- x + W_res z,   skip += W_skip z           (1x1 convolutions)

and the head ReLU > 1x1 > ReLU > 1x1 to K = 256 logits from the sum of the skips. Receptive
field: (kernel-1) * (sum of all dilations) + 2 samples (2,047 + 1 = 2,048 for 2 stacks of 10).

Generation. Both generators draw sample t with `jax.random.categorical(fold_in(key, t),
logits / temperature)`, so with the same key they make the same draws from the same logits.
- `generate_naive` recomputes the whole forward pass over the last `receptive_field` samples
  for every new sample: O(receptive field x layers) per sample.
- `generate_queued` keeps, for every dilated layer, a queue of its last (kernel-1) * dilation
  inputs, so each new sample costs one matrix-vector product per tap and layer: O(layers).
Both call the same `CausalConv1d.apply_taps` with the same operands (the queues hold exactly
the activations the full pass recomputes), so their logits agree to float rounding and their
samples are identical (tests/test_signals.py; benchmarks/wavenet_generation.py times them).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from models.layers_1d import CausalConv1d
from models.registry import register


class ResidualBlock(nnx.Module):
    """Gated dilated causal conv, then the residual and skip 1x1 convolutions."""

    def __init__(self, residual: int, gate: int, skip: int, dilation: int, kernel: int, *,
                 rngs: nnx.Rngs):
        self.gate_channels = gate
        # Filter and gate in one conv: its output's halves are W_f * x and W_g * x.
        self.dilated = CausalConv1d(residual, 2 * gate, kernel, dilation=dilation, rngs=rngs)
        self.res = nnx.Linear(gate, residual, rngs=rngs)
        self.skip = nnx.Linear(gate, skip, rngs=rngs)

    def gated(self, pre: jax.Array) -> jax.Array:
        filters, gates = pre[..., :self.gate_channels], pre[..., self.gate_channels:]
        return jnp.tanh(filters) * jax.nn.sigmoid(gates)

    def after_conv(self, x: jax.Array, pre: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(new residual stream, skip) from the dilated conv's output `pre`."""
        z = self.gated(pre)
        return x + self.res(z), self.skip(z)

    def from_taps(self, x: jax.Array, taps) -> tuple[jax.Array, jax.Array]:
        """One time step, given the inputs the dilated conv's taps read (generation)."""
        return self.after_conv(x, self.dilated.apply_taps(taps))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.after_conv(x, self.dilated(x))  # the conv delays x for each of its taps


class WaveNet(nnx.Module):
    def __init__(self, *, num_classes: int = 256, in_channels: int = 1, rngs: nnx.Rngs,
                 residual_channels: int = 32, gate_channels: int = 32, skip_channels: int = 64,
                 stacks: int = 2, layers_per_stack: int = 10, kernel: int = 2):
        if in_channels != 1:
            raise ValueError(f"the WaveNet models one channel of codes, got in_channels="
                             f"{in_channels}")
        if kernel < 2 or stacks < 1 or layers_per_stack < 1:
            raise ValueError("WaveNet needs kernel >= 2, stacks >= 1 and layers_per_stack >= 1")
        self.num_classes = num_classes
        self.input_conv = CausalConv1d(num_classes, residual_channels, 2, rngs=rngs)
        self.dilations = tuple(2 ** i for _ in range(stacks) for i in range(layers_per_stack))
        self.blocks = nnx.List([ResidualBlock(residual_channels, gate_channels, skip_channels,
                                              d, kernel, rngs=rngs) for d in self.dilations])
        self.head1 = nnx.Linear(skip_channels, skip_channels, rngs=rngs)
        self.head2 = nnx.Linear(skip_channels, num_classes, rngs=rngs)

    @property
    def receptive_field(self) -> int:
        """Input samples one output depends on: the input conv's 2 plus each layer's reach."""
        return 2 + sum((b.dilated.kernel_size - 1) * b.dilated.dilation for b in self.blocks)

    def head(self, skips: jax.Array) -> jax.Array:
        return self.head2(jax.nn.relu(self.head1(jax.nn.relu(skips))))

    def one_hot(self, codes: jax.Array) -> jax.Array:
        return jax.nn.one_hot(codes, self.num_classes, dtype=jnp.float32)

    def __call__(self, codes: jax.Array) -> jax.Array:
        return self.from_one_hot(self.one_hot(codes))

    def from_one_hot(self, one_hot: jax.Array) -> jax.Array:
        """The logits from (B, T, K) one-hot (or any real) input vectors: differentiable in
        the input, for the causality test."""
        x = self.input_conv(one_hot)
        skips = None
        for block in self.blocks:
            x, skip = block(x)
            skips = skip if skips is None else skips + skip
        return self.head(skips)


@register("wavenet", input_shape=(2048, 1), num_classes=256, output="sample_logits")
def wavenet(**kwargs) -> WaveNet:
    return WaveNet(**kwargs)


# ---------------------------------------------------------------------------------------------
# Generation


def _draw(key: jax.Array, t, logits: jax.Array, temperature: float) -> jax.Array:
    return jax.random.categorical(jax.random.fold_in(key, t), logits / temperature, axis=-1)


def generate_naive(model: WaveNet, prime: jax.Array, n: int, key: jax.Array,
                   temperature: float = 1.0) -> jax.Array:
    """(B, n) codes following `prime` (B, P >= 1), each from a full forward pass over the last
    `receptive_field` samples (fewer at the start, where the signal itself begins)."""
    graph, state = nnx.split(model)
    return _naive(graph, state, prime, n, key, temperature)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _naive(graph, state, prime, n, key, temperature):
    model = nnx.merge(graph, state)
    batch, p = prime.shape
    window = min(model.receptive_field, p + n - 1)
    buffer = jnp.concatenate([prime, jnp.zeros((batch, n), prime.dtype)], axis=1)

    def body(t, buffer):  # draw sample t from the samples before it
        start = jnp.maximum(0, t - window)
        logits = model(jax.lax.dynamic_slice_in_dim(buffer, start, window, axis=1))
        last = jax.lax.dynamic_index_in_dim(logits, t - 1 - start, axis=1, keepdims=False)
        return buffer.at[:, t].set(_draw(key, t, last, temperature).astype(buffer.dtype))

    return jax.lax.fori_loop(p, p + n, body, buffer)[:, p:]


def generate_queued(model: WaveNet, prime: jax.Array, n: int, key: jax.Array,
                    temperature: float = 1.0) -> jax.Array:
    """The same as `generate_naive`, from per-layer activation queues: the prime is fed one
    sample at a time to fill them, then each new sample is fed back."""
    graph, state = nnx.split(model)
    return _queued(graph, state, prime, n, key, temperature)


def _queue_length(conv: CausalConv1d) -> int:
    return (conv.kernel_size - 1) * conv.dilation


def _read_write(queue: jax.Array, conv: CausalConv1d, t, x: jax.Array):
    """The conv's taps at step t (oldest first, x itself last) and the queue with x stored.

    A queue of L = (k-1)*d slots is a ring indexed by t mod L: slot (t - lag) mod L holds the
    input of step t - lag for every lag d, 2d, ..., L, and x overwrites the oldest (lag L)."""
    length = queue.shape[1]
    taps = [queue[:, (t - lag) % length] for lag in conv.lags()[:-1]] + [x]
    return taps, queue.at[:, t % length].set(x)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _queued(graph, state, prime, n, key, temperature):
    model = nnx.merge(graph, state)
    batch, p = prime.shape
    residual = model.input_conv.kernel.shape[-1]
    queues = {"input": jnp.zeros((batch, 1, model.num_classes)),
              "blocks": [jnp.zeros((batch, _queue_length(b.dilated), residual))
                         for b in model.blocks]}

    def step(carry, t):
        """Feeds sample t-1 (the prime's, else the last draw) and draws sample t."""
        queues, previous = carry
        code = jnp.where(t - 1 < p, prime[:, jnp.minimum(t - 1, p - 1)], previous)
        taps, q_in = _read_write(queues["input"], model.input_conv, t - 1, model.one_hot(code))
        x = model.input_conv.apply_taps(taps)
        skips, q_blocks = None, []
        for block, queue in zip(model.blocks, queues["blocks"]):
            taps, queue = _read_write(queue, block.dilated, t - 1, x)
            x, skip = block.from_taps(x, taps)
            skips = skip if skips is None else skips + skip
            q_blocks.append(queue)
        drawn = _draw(key, t, model.head(skips), temperature).astype(prime.dtype)
        return ({"input": q_in, "blocks": q_blocks}, drawn), drawn

    init = (queues, jnp.zeros((batch,), prime.dtype))
    _, drawn = jax.lax.scan(step, init, jnp.arange(1, p + n))
    return jnp.moveaxis(drawn[p - 1:], 0, 1)
