"""Spec -> callable: the host twin for a Grain per-example map, the device twin for the step.

Both run the same ops in the same order, each op drawing its parameters with the shared draw
(on the host from the example's NumPy Generator, on device from the example's key) and then
applying them. The device twin gives example i the key `jax.random.split(key, B)[i]` and one
sub-key per op, so its output depends only on the step key and the example's index.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from data.augment import registry
from data.augment.sampling import DeviceSampler, HostSampler
from data.augment.spec import parse


def resolve(spec) -> list[tuple[registry.Op, dict]]:
    """The spec's ops with their arguments, resolved once (e.g. normalize's dataset stats)."""
    steps = []
    for call in parse(spec):
        op = registry.get(call.name)
        steps.append((op, op.prepare(**call.args) if op.prepare else dict(call.args)))
    return steps


def host_pipeline(spec) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """`augment(image HWC float32, rng) -> image`, NumPy only (safe in Grain worker processes)."""
    steps = resolve(spec)

    def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        image = np.asarray(image, np.float32)
        sampler = HostSampler(rng)
        for op, args in steps:
            image = np.asarray(op.host(image, **op.draw(sampler, image.shape, **args)),
                               np.float32)
        return image

    return augment


def device_pipeline(spec) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """`augment(images NHWC, key) -> images`, jittable; one key per example, vmapped."""
    steps = resolve(spec)

    def one(image: jax.Array, key: jax.Array) -> jax.Array:
        for (op, args), op_key in zip(steps, jax.random.split(key, len(steps))):
            image = op.device(image, **op.draw(DeviceSampler(op_key), image.shape, **args))
        return image

    def augment(images: jax.Array, key: jax.Array) -> jax.Array:
        if not steps:
            return images
        return jax.vmap(one)(images, jax.random.split(key, images.shape[0]))

    return augment
