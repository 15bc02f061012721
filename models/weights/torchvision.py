"""torchvision's ImageNet classifiers as convjax networks: which network each one is, how its
`state_dict` names map onto convjax's modules, how each tensor's layout changes, and the
preprocessing its weights expect.

Layouts: a conv weight (O, I, kh, kw) becomes an HWIO kernel (kh, kw, I, O); a dense weight
(O, I) a kernel (I, O); BatchNorm's weight, bias, running_mean and running_var become scale,
bias, mean and var (num_batches_tracked is training bookkeeping, dropped). VGG's and AlexNet's
first dense layer reads a flattened feature map, which torchvision flattens in (C, H, W) order
and convjax (NHWC) in (H, W, C) order, so its input axis is permuted (`nhwc_dense_kernel`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import jax.numpy as jnp
import numpy as np
from flax import nnx

from errors import UserError
from models import densenet, googlenet, resnet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Source:
    model: str                 # the convjax network (models.registry name)
    options: dict              # its factory options that make it torchvision's layout
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


# torchvision's pretrained googlenet runs with transform_input=True, which maps an input
# normalised with ImageNet's mean and std to (x - 0.5) / 0.5 per channel; normalising that way
# directly is the same function, so the imported net gets mean = std = 0.5 and no transform.
SOURCES = {
    **{f"resnet{d}": Source(f"resnet{d}", {}) for d in (18, 34, 50, 101, 152)},
    **{f"vgg{d}": Source(name, {}) for d, name in
       ((11, "vgg_a"), (13, "vgg_b"), (16, "vgg_d"), (19, "vgg_e"))},
    **{f"vgg{d}_bn": Source(name, {"batch_norm": True}) for d, name in
       ((11, "vgg_a"), (13, "vgg_b"), (16, "vgg_d"), (19, "vgg_e"))},
    "alexnet": Source("alexnet_one_tower", {}),
    **{f"densenet{d}": Source(f"densenet{d}", {}) for d in (121, 169, 201)},
    "googlenet": Source("googlenet", {"layout": "torchvision", "dropout": 0.2},
                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}

# The standard evaluation transform of torchvision's weights (ImageClassification preset).
RESIZE_SHORTER, CENTER_CROP = 256, 224


def source(name: str) -> Source:
    if name not in SOURCES:
        raise UserError(f"--model {name!r} is not a torchvision network convjax imports; "
                        f"choose one of {', '.join(SOURCES)}")
    return SOURCES[name]


def num_classes(tensors: dict[str, np.ndarray], name: str) -> int:
    """The class count of a state dict: the rows of its last dense layer."""
    key = {"vgg": "classifier.6.weight", "ale": "classifier.6.weight",
           "den": "classifier.weight"}.get(name[:3], "fc.weight")
    if key not in tensors:
        raise UserError(f"the weights have no {key!r}: they are not torchvision's {name} "
                        "(missing tensor)")
    return int(tensors[key].shape[0])


# ---- module pairs: (torchvision prefix, convjax module, kind) --------------------------------

def _resnet(model: resnet.ResNet, name: str) -> Iterator[tuple[str, nnx.Module, str]]:
    yield "conv1", model.stem.layers[0], "conv"
    yield "bn1", model.stem.layers[1], "bn"
    blocks = iter(model.blocks.layers)
    for stage, n in enumerate(model.depths, start=1):
        for j in range(n):
            block, prefix = next(blocks), f"layer{stage}.{j}"
            for k in (1, 2, 3):
                if hasattr(block, f"conv{k}"):
                    yield f"{prefix}.conv{k}", getattr(block, f"conv{k}"), "conv"
                    yield f"{prefix}.bn{k}", getattr(block, f"norm{k}"), "bn"
            if isinstance(block.shortcut, resnet.Projection):
                yield f"{prefix}.downsample.0", block.shortcut.conv, "conv"
                yield f"{prefix}.downsample.1", block.shortcut.norm, "bn"
    yield "fc", model.head, "dense"


def _vgg(model, name: str) -> Iterator[tuple[str, nnx.Module, str]]:
    index = 0  # torchvision's index in `features`: conv, [bn], relu, or a pool
    for layer in model.convs.layers:
        if isinstance(layer, nnx.Module) and hasattr(layer, "conv"):
            yield f"features.{index}", layer.conv, "conv"
            if isinstance(layer.norm, nnx.BatchNorm):
                yield f"features.{index + 1}", layer.norm, "bn"
                index += 1
            index += 2
        else:
            index += 1
    yield "classifier.0", model.fc6, "dense_nhwc7"
    yield "classifier.3", model.fc7, "dense"
    yield "classifier.6", model.head, "dense"


def _alexnet(model, name: str) -> Iterator[tuple[str, nnx.Module, str]]:
    convs = [m for m in model.convs.layers if isinstance(m, nnx.Conv)]
    for index, conv in zip((0, 3, 6, 8, 10), convs, strict=True):
        yield f"features.{index}", conv, "conv"
    yield "classifier.1", model.fc6, "dense_nhwc6"
    yield "classifier.4", model.fc7, "dense"
    yield "classifier.6", model.head, "dense"


def _densenet(model: densenet.DenseNet, name: str) -> Iterator[tuple[str, nnx.Module, str]]:
    yield "features.conv0", model.stem.layers[0], "conv"
    yield "features.norm0", model.stem.layers[1], "bn"
    block, layer = 1, 0
    for module in model.body.layers:
        if isinstance(module, densenet.DenseLayer):
            layer += 1
            prefix = f"features.denseblock{block}.denselayer{layer}"
            yield f"{prefix}.norm1", module.norm1, "bn"
            yield f"{prefix}.conv1", module.conv1, "conv"
            yield f"{prefix}.norm2", module.norm2, "bn"
            yield f"{prefix}.conv2", module.conv2, "conv"
        else:
            yield f"features.transition{block}.norm", module.norm, "bn"
            yield f"features.transition{block}.conv", module.conv, "conv"
            block, layer = block + 1, 0
    yield "features.norm5", model.final_norm, "bn"
    yield "classifier", model.head, "dense"


def _unit(prefix: str, unit) -> Iterator[tuple[str, nnx.Module, str]]:
    """torchvision's BasicConv2d: `conv` and `bn`."""
    yield f"{prefix}.conv", unit.conv, "conv"
    yield f"{prefix}.bn", unit.norm, "bn"


def _googlenet(model: googlenet.GoogLeNet, name: str) -> Iterator[tuple[str, nnx.Module, str]]:
    units = [m for m in model.stem.layers if hasattr(m, "conv")]
    for prefix, unit in zip(("conv1", "conv2", "conv3"), units, strict=True):
        yield from _unit(prefix, unit)
    names = (s[0] for s in googlenet.INCEPTION if s != "M")
    for block in model.blocks:
        if not isinstance(block, googlenet.Inception):
            continue
        prefix = f"inception{next(names)}"
        yield from _unit(f"{prefix}.branch1", block.b1)
        for branch, seq in (("branch2", block.b2), ("branch3", block.b3)):
            yield from _unit(f"{prefix}.{branch}.0", seq.layers[0])
            yield from _unit(f"{prefix}.{branch}.1", seq.layers[1])
        yield from _unit(f"{prefix}.branch4.1", block.b4.layers[1])
    yield "fc", model.head, "dense"


_PAIRS = {"res": _resnet, "vgg": _vgg, "ale": _alexnet, "den": _densenet, "goo": _googlenet}


# ---- tensor layouts ----------------------------------------------------------------------------

def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """(O, I, kh, kw) -> (kh, kw, I, O)."""
    return weight.transpose(2, 3, 1, 0)


def nhwc_dense_kernel(weight: np.ndarray, side: int) -> np.ndarray:
    """A dense layer's (O, C*side*side) weight that reads a (C, H, W)-flattened map, as the
    (side*side*C, O) kernel that reads the same map flattened in (H, W, C) order."""
    out, fan_in = weight.shape
    c = fan_in // (side * side)
    return weight.reshape(out, c, side, side).transpose(2, 3, 1, 0).reshape(-1, out)


def _targets(prefix: str, module, kind: str, tensors: dict) -> Iterator[tuple[str, object, object]]:
    """(torch key, convjax variable, converted array or None when absent) of one module."""
    get = lambda suffix: tensors.get(f"{prefix}.{suffix}")
    if kind == "bn":
        for suffix, var in (("weight", module.scale), ("bias", module.bias),
                            ("running_mean", module.mean), ("running_var", module.var)):
            yield f"{prefix}.{suffix}", var, get(suffix)
        return
    w = get("weight")
    if w is not None:
        w = (conv_kernel(w) if kind == "conv" else
             nhwc_dense_kernel(w, int(kind[-1])) if kind.startswith("dense_nhwc") else w.T)
    yield f"{prefix}.weight", module.kernel, w
    if module.bias is not None:
        yield f"{prefix}.bias", module.bias, get("bias")


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load(model: nnx.Module, name: str, tensors: dict[str, np.ndarray]) -> int:
    """Copies torchvision's state dict `tensors` (NumPy arrays) into `model` (built from
    SOURCES[name]) in place; returns the number of tensors copied. Missing, extra and
    mis-shaped tensors are one-line UserErrors naming the first few."""
    pairs = [t for p in _PAIRS[name[:3]](model, name) for t in _targets(*p, tensors)]
    missing = [key for key, _, value in pairs if value is None]
    if missing:
        raise UserError(f"the weights lack {len(missing)} tensor(s) torchvision's {name} has: "
                        f"{_first(missing)}; is --model right?")
    used = {key for key, _, _ in pairs}
    extra = sorted(k for k in tensors if k not in used and not k.endswith("num_batches_tracked"))
    if extra:
        raise UserError(f"the weights have {len(extra)} tensor(s) torchvision's {name} does not: "
                        f"{_first(extra)}; is --model right?")
    wrong = [f"{key} {tuple(tensors[key].shape)}" for key, var, value in pairs
             if value.shape != var.shape]
    if wrong:
        raise UserError(f"{len(wrong)} tensor(s) do not fit torchvision's {name}: "
                        f"{_first(wrong)}; is --model right?")
    for _, var, value in pairs:
        var.set_value(jnp.asarray(value, dtype=jnp.float32))
    return len(pairs)
