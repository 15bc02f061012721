"""`launch.py import --from torchvision|timm --model NAME --weights FILE.safetensors --out
RUN_DIR [--check]`: published weights as a convjax run directory.

NAME is torchvision's: resnet18 ... resnet152, vgg11/13/16/19 (and _bn), alexnet,
densenet121/169/201, googlenet; from timm, the same names but alexnet and googlenet (timm has
neither; its VGG names differ: models/weights/timm.py), with the hub's config.json beside the
weights for their preprocessing. The run directory holds config.json (the network, and the
source's preprocessing: torchvision's shorter side resized to 256 bilinear, centre crop 224,
the source's mean and std; timm's from its pretrained_cfg), environment.json, data_info.json,
source.json (where the weights came from and their sha256) and one checkpoint at step 0, so
`launch.py eval`, `predict` and `--config.model.init_from=RUN_DIR` take it like a trained
run.

Safetensors only, never pickle: a .pth/.pt file is refused with the two-line PyTorch command
that converts it. `--check` (PyTorch needed) loads the same file into a PyTorch twin of
torchvision's network (benchmarks/torchvision_twins.py), runs both on random images at 224x224
and 200x200, prints the largest logit difference relative to the largest logit, and records it
in source.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from errors import UserError, one_line

CONVERT = ("python -c \"import torch, safetensors.torch as st; "
           "sd = torch.load('{src}', map_location='cpu', weights_only=True); "
           "st.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{dst}')\"")
CHECK_SIZES = (224, 200)


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py import", add_help=False,
                                     allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--from", dest="source", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--check", action="store_true")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{one_line(err)}; see --help") from None
    if rest:
        raise UserError(f"unknown argument {rest[0]!r}; see --help")
    if args.source not in SOURCES:
        raise UserError(f"--from {args.source!r}: choose one of {', '.join(SOURCES)}")
    return args


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file as NumPy arrays; other formats are refused."""
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        raise UserError(f"{path} is a pickle file, which can run code when loaded; convert it "
                        "to safetensors first: " + CONVERT.format(
                            src=path, dst=path.with_suffix(".safetensors")))
    if not path.is_file():
        raise UserError(f"--weights {path} does not exist; give a .safetensors file")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"cannot read {path} as safetensors: {one_line(err)}") from None


def preprocessing(src) -> dict:
    """The config fields of torchvision's evaluation transform for `src`."""
    from models.weights import torchvision as tv

    return {"image_size": tv.CENTER_CROP, "resize_shorter": tv.RESIZE_SHORTER,
            "center_crop": tv.CENTER_CROP, "mean": tuple(src.mean), "std": tuple(src.std)}


def build(name: str, tensors: dict[str, np.ndarray], transform: dict | None = None,
          **options):
    """(config, data info, model) of torchvision's `name` holding `tensors` (torchvision's
    names), evaluated with `transform` (config fields; default torchvision's); `options` go
    to the network beside the source's own (a shallower ResNet's `depths`, in tests)."""
    import models
    import tasks
    from models.weights import torchvision as tv
    from training import config as config_lib

    src = tv.source(name)
    options = {**src.options, **options}
    classes = tv.num_classes(tensors, name)
    c = config_lib.base_config()
    c.model.name = src.model
    with c.model.unlocked():
        c.model.update(options)
    c.data.name, c.data.eval_split = "imagenet2012", "validation"
    c.data.update(transform or preprocessing(src))
    info = tasks.DataInfo(name=c.data.name, num_classes=classes, in_channels=3)
    model = models.create(src.model, num_classes=classes, in_channels=3, **options)
    tv.load(model, name, tensors)
    return c, info, model


def write_run(out: Path, c, info, model, source: dict) -> None:
    """A run directory holding `model` as its one checkpoint, at step 0."""
    import tasks
    from training import checkpoint, config as config_lib, loop, optim, record

    task = tasks.create(c, info)
    _, state = loop.initial_state(task, model, optim.make_optimizer(c), c.seed)
    out.mkdir(parents=True, exist_ok=True)
    run = record.RunRecord(out, writer_enabled=True)
    (out / "config.json").write_text(c.to_json(indent=2) + "\n")
    run.write_json("environment.json", record.environment())
    run.write_json(loop.DATA_INFO, dataclasses.asdict(info))
    metric, mode = config_lib.best_checkpoint(c, task)
    mngr = checkpoint.manager(out / "checkpoints", keep=c.checkpoint.keep, best_metric=metric,
                              best_mode=mode)
    checkpoint.save(mngr, 0, state, {}, json.loads(c.to_json()), None)
    mngr.wait_until_finished()
    mngr.close()
    run.write_json("source.json", {**source, "params_sha256": record.params_sha256(state.params)})


def parity(name: str, tensors: dict[str, np.ndarray], model, sizes=CHECK_SIZES,
           seed: int = 0) -> dict[int, float]:
    """{input side: max |convjax - torch| / max |torch|} of the logits on random images, with
    `tensors` loaded into both `model` and the PyTorch twin of torchvision's `name`."""
    try:
        import torch

        from benchmarks import torchvision_twins
    except ImportError:
        raise UserError("--check needs PyTorch: `uv sync --group bench` installs it") from None
    from models.weights import torchvision as tv

    twin = torchvision_twins.build(name, num_classes=tv.num_classes(tensors, name))
    # The names were checked against convjax's network already; num_batches_tracked may be
    # absent from a converted file, hence not strict.
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()},
                         strict=False)
    return compare(twin.eval(), model, sizes, seed)


def compare(twin, model, sizes, seed: int = 0) -> dict[int, float]:
    """{side: relative max logit difference} of a torch `twin` and a convjax `model` (eval
    mode) on the same two random N(0, 1) images per side."""
    import jax
    import torch
    from flax import nnx

    model.eval()
    forward = nnx.jit(lambda m, x: m(x))
    result = {}
    for side in sizes:
        x = np.random.default_rng(seed + side).standard_normal((2, 3, side, side), np.float32)
        with torch.no_grad():
            ref = twin(torch.from_numpy(x)).numpy()
        got = np.asarray(jax.device_get(forward(model, x.transpose(0, 2, 3, 1))))
        result[side] = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    return result


def from_torchvision(name: str, weights: Path) -> tuple[dict, dict]:
    """(torchvision's tensors, the eval transform's config fields) of torchvision's `name`."""
    from models.weights import torchvision as tv

    src = tv.source(name)
    return read_safetensors(weights), preprocessing(src)


def from_timm(name: str, weights: Path) -> tuple[dict, dict]:
    """timm's `name`: its tensors under torchvision's names, and the transform of the hub's
    config.json beside the weights."""
    from models.weights import timm

    timm.source(name)
    transform = timm.preprocessing(timm.config_path(weights))
    return timm.torchvision_names(name, read_safetensors(weights)), transform


SOURCES = {"torchvision": from_torchvision, "timm": from_timm}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    args = _args(argv)
    out, weights = Path(args.out), Path(args.weights)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not empty; choose a new directory")
    tensors, transform = SOURCES[args.source](args.model, weights)
    c, info, model = build(args.model, tensors, transform)
    source = {"from": args.source, "model": args.model, "weights": str(weights.resolve()),
              "weights_sha256": _sha256(weights), "network": c.model.name,
              "preprocessing": transform}
    if args.check:
        diffs = parity(args.model, tensors, model)
        source["parity_max_relative_logit_difference"] = {str(k): v for k, v in diffs.items()}
        print("parity against the PyTorch twin: " + ", ".join(
            f"{side}x{side} {d:.2e}" for side, d in diffs.items()))
    write_run(out, c, info, model, source)
    print(f"imported {args.source} {args.model} ({info.num_classes} classes) as "
          f"{c.model.name}: wrote {out}")
    return 0
