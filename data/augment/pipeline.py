"""Spec -> callable: the host twin for a Grain per-example map, the device twin for the step.

Both run the same ops in the same order, each op drawing its parameters with the shared draw
(on the host from the example's NumPy Generator, on device from the example's key) and then
applying them. The device twin gives example i the key `jax.random.split(key, B)[i]` and one
sub-key per op, so its output depends only on the step key and the example's index.

Given a segmentation mask as well (`mask=` on the host, `masks=` on device), each geometric op
applies its one drawn transform to image and mask alike (the mask nearest-neighbour, with
`mask_fill` where the image is padded or warped in from outside); the other ops leave the mask
alone. Without a mask nothing changes: the same draws, the same outputs.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from data.augment import registry
from data.augment.sampling import DeviceSampler, HostSampler
from data.augment.spec import parse
from errors import UserError


def resolve(spec) -> list[tuple[registry.Op, dict]]:
    """The spec's ops with their arguments, resolved once (e.g. normalize's dataset stats)."""
    steps = []
    for call in parse(spec):
        op = registry.get(call.name)
        steps.append((op, op.prepare(**call.args) if op.prepare else dict(call.args)))
    return steps


def host_pipeline(spec, mask_fill: int = 0) -> Callable:
    """`augment(image HWC float32, rng) -> image`, NumPy only (safe in Grain worker processes);
    `augment(image, rng, mask=mask HW int) -> (image, mask)`, the mask's dtype kept."""
    steps = resolve(spec)

    def augment(image: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None):
        image = np.asarray(image, np.float32)
        if mask is not None:
            mask = np.asarray(mask)
            _check_mask(image.shape, mask.shape, "mask", "image")
        sampler = HostSampler(rng)
        for op, args in steps:
            params = op.draw(sampler, image.shape, **args)
            if mask is not None and op.moves_pixels:
                mask = op.mask_host(mask, mask_fill, **params)
            image = np.asarray(op.host(image, **params), np.float32)
        return image if mask is None else (image, mask)

    return augment


def device_pipeline(spec, mask_fill: int = 0) -> Callable:
    """`augment(images NHWC, key) -> images`, jittable; one key per example, vmapped;
    `augment(images, key, masks=masks NHW int) -> (images, masks)`."""
    steps = resolve(spec)

    def one(image: jax.Array, key: jax.Array, mask: jax.Array | None = None):
        for (op, args), op_key in zip(steps, jax.random.split(key, len(steps))):
            params = op.draw(DeviceSampler(op_key), image.shape, **args)
            if mask is not None and op.moves_pixels:
                mask = op.mask_device(mask, mask_fill, **params)
            image = op.device(image, **params)
        return image if mask is None else (image, mask)

    def augment(images: jax.Array, key: jax.Array, masks: jax.Array | None = None):
        if masks is not None:
            _check_mask(images.shape, masks.shape, "masks", "images")
        if not steps:
            return images if masks is None else (images, masks)
        keys = jax.random.split(key, images.shape[0])
        if masks is None:
            return jax.vmap(one)(images, keys)
        return jax.vmap(one)(images, keys, masks)

    return augment


def _check_mask(image_shape, mask_shape, mask_name, image_name) -> None:
    """A mask is the image's shape without channels: HW for HWC (NHW for NHWC)."""
    if tuple(mask_shape) != tuple(image_shape[:-1]):
        raise UserError(f"augmentation: {mask_name} shape {tuple(mask_shape)} does not fit "
                        f"{image_name} shape {tuple(image_shape)}; a mask is the image's "
                        "height x width of integer class ids")
