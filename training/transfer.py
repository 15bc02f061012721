"""Transfer learning: start a run from another run's weights, and train only part of it.

- `model.init_from=RUN_DIR` (a trained or imported run) copies that run's parameters and
  BatchNorm statistics into this run's network before the first step; the network takes the
  source's model options unless this run's config sets them. `model.new_head=True` keeps this
  run's freshly initialised `head` (a new class count); otherwise the head is copied too.
- `train.trainable` is a regex searched in each parameter's path (`head.kernel`,
  `blocks.layers.3.conv1.kernel`, ...); parameters it does not match are frozen by
  `optax.multi_transform` with `optax.set_to_zero()`, and BatchNorm layers whose scale is
  frozen run on their running statistics in training too, so they stay bit-identical.
- `optimizer.backbone_lr_multiplier` scales the updates of every trainable parameter outside
  `head` (a lower learning rate for the pretrained layers than for the new classifier).
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import ml_collections
import optax
from flax import nnx

from errors import UserError

HEAD = "head"


def path_name(path) -> str:
    """A pytree path as dotted text: `blocks.layers.3.conv1.kernel`."""
    parts = []
    for key in path:
        part = getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
        if part != "value":
            parts.append(str(part))
    return ".".join(parts)


def _pattern(c) -> re.Pattern | None:
    text = c.train.get("trainable", "")
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as err:
        raise UserError(f"train.trainable={text!r} is not a regex ({err}); e.g. '^head'") from None


def label(name: str, pattern: re.Pattern | None) -> str:
    """'frozen', 'head' or 'backbone' for the parameter at dotted path `name`."""
    if pattern is not None and not pattern.search(name):
        return "frozen"
    return "head" if name.split(".")[0] == HEAD else "backbone"


def partition(c, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` for the head, `tx` scaled for the backbone, zero for frozen parameters; `tx`
    itself when nothing is frozen or scaled (so ordinary runs keep their optimizer state)."""
    pattern = _pattern(c)
    multiplier = c.optimizer.get("backbone_lr_multiplier", 1.0)
    if pattern is None and multiplier == 1.0:
        return tx
    labels = lambda params: jax.tree.map_with_path(
        lambda path, _: label(path_name(path), pattern), params)
    backbone = tx if multiplier == 1.0 else optax.chain(tx, optax.scale(multiplier))
    return optax.multi_transform({"head": tx, "backbone": backbone,
                                  "frozen": optax.set_to_zero()}, labels)


def check_trainable(c, params) -> None:
    """A trainable regex that matches no parameter is a mistake, not a frozen run."""
    pattern = _pattern(c)
    if pattern is None:
        return
    names = [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if not any(pattern.search(n) for n in names):
        raise UserError(f"train.trainable={pattern.pattern!r} matches no parameter of "
                        f"{c.model.name} (they are named like {names[0]}, {names[-1]})")


def freeze_batchnorm(c, defs, state):
    """`defs` with a train graph in which every BatchNorm whose scale is frozen uses its
    running statistics (and so never updates them)."""
    pattern = _pattern(c)
    if pattern is None:
        return defs
    model = nnx.merge(defs.train, state.params, state.batch_stats, state.rest)
    for path, module in nnx.iter_graph(model):
        if isinstance(module, nnx.BatchNorm):
            name = ".".join(map(str, path))
            if label(f"{name}.scale", pattern) == "frozen":
                module.use_running_average = True
    return defs.replace(train=nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0])


# ---- init_from ----------------------------------------------------------------------------

def _source(c) -> Path | None:
    text = c.model.get("init_from", "")
    return Path(text) if text else None


def adopt_source_options(c: ml_collections.ConfigDict) -> None:
    """Gives `c.model` the source run's model options it does not set itself (GoogLeNet's
    torchvision layout, VGG's batch_norm, a width), so the network is the source's; recorded
    in this run's config.json, so the run is complete without its source."""
    src = _source(c)
    if src is None:
        return
    import models
    from training import config as config_lib, run_dir

    src_c = run_dir.load_config(src)
    if models.spec(src_c.model.name).name != models.spec(c.model.name).name:
        raise UserError(f"model.init_from={src} holds a {src_c.model.name}, this run builds a "
                        f"{c.model.name}; set --config.model.name={src_c.model.name}")
    with c.model.unlocked():
        for key, value in config_lib.model_options(src_c).items():
            if key not in c.model:
                c.model[key] = value


def _flat(tree) -> dict:
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def copy_weights(target, source, *, new_head: bool, what: str, src: Path):
    """`target` (a params or batch-stats pytree) with every leaf taken from `source` by path,
    except the head's when `new_head`; missing or mis-shaped leaves are one UserError."""
    have = _flat(source)
    paths, treedef = jax.tree_util.tree_flatten_with_path(target)
    leaves, missing, wrong = [], [], []
    for path, leaf in paths:
        name = path_name(path)
        if new_head and name.split(".")[0] == HEAD:
            leaves.append(leaf)
        elif name not in have:
            missing.append(name)
        elif have[name].shape != leaf.shape:
            wrong.append(f"{name} {tuple(have[name].shape)} vs {tuple(leaf.shape)}")
        else:
            leaves.append(have[name])
    if wrong and not new_head and all(w.startswith(HEAD + ".") for w in wrong):
        raise UserError(f"model.init_from={src}: its head does not fit this run's classes "
                        f"({_first(wrong)}); add --config.model.new_head=True")
    if missing or wrong:
        raise UserError(f"model.init_from={src}: {what} do not fit this network: "
                        f"{_first(missing + wrong)}; give the source's model options")
    return jax.tree_util.tree_unflatten(treedef, leaves)


def start_from(c, state):
    """`state` with the init_from run's parameters and BatchNorm statistics (the head kept
    when model.new_head); `state` itself without init_from."""
    src = _source(c)
    if src is None:
        return state
    import tasks
    from training import run_dir

    src_c = run_dir.load_config(src)
    info = run_dir.saved_data_info(src)
    if info is None:
        raise UserError(f"model.init_from={src} has no data_info.json; give a run directory "
                        "written by `launch.py train` or `launch.py import`")
    _, src_state, _ = run_dir.restore(src, src_c, tasks.create(src_c, info), "best")
    new_head = bool(c.model.get("new_head", False))
    params = copy_weights(state.params, src_state.params, new_head=new_head,
                          what="parameters", src=src)
    stats = copy_weights(state.batch_stats, src_state.batch_stats, new_head=new_head,
                         what="BatchNorm statistics", src=src)
    return state.replace(params=params, batch_stats=stats)


def prepare(c, defs, state):
    """(defs, state) at step 0 of a transfer run: the source's weights (init_from, new_head),
    the trainable regex checked, frozen BatchNorm layers on their running statistics."""
    check_trainable(c, state.params)
    state = start_from(c, state)
    return freeze_batchnorm(c, defs, state), state
