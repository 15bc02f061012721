"""The model zoo: every network of model_params.json has exactly its published trainable
parameter count, and every registered network builds and runs forward and backward.

Counting uses `nnx.eval_shape`, so even the 140M-parameter VGGs allocate nothing. The
forward/backward check runs on a small input (the smallest each architecture takes), with
widths reduced where that only saves arithmetic. Networks whose every block already runs by
default (on a shallower sibling or in a dedicated test) are in HEAVY: each costs 5-170 s of
init and XLA compilation on a loaded CPU, so they are skipped, with the reason shown, unless
CONVJAX_HEAVY=1 (the whole file then takes ~15 minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import models

# model_params.json (the published counts, with their sources), copied so that this test
# runs from any checkout: name -> (trainable parameters, (H, W, C) input, classes).
PUBLISHED = {
    "lenet5": (61_706, (32, 32, 1), 10),
    "lenet_keras_lecture": (81_194, (32, 32, 1), 10),
    "alexnet_paper_grouped": (60_965_224, (224, 224, 3), 1000),
    "alexnet_one_tower": (61_100_840, (224, 224, 3), 1000),
    "vgg_a": (132_863_336, (224, 224, 3), 1000),
    "vgg_a_lrn": (132_863_336, (224, 224, 3), 1000),
    "vgg_b": (133_047_848, (224, 224, 3), 1000),
    "vgg_c": (133_638_952, (224, 224, 3), 1000),
    "vgg_d": (138_357_544, (224, 224, 3), 1000),
    "vgg_e": (143_667_240, (224, 224, 3), 1000),
    "vgg_d_bn": (138_365_992, (224, 224, 3), 1000),
    "googlenet": (6_624_904, (224, 224, 3), 1000),
    "googlenet_aux": (13_004_888, (224, 224, 3), 1000),
    "resnet18": (11_689_512, (224, 224, 3), 1000),
    "resnet34": (21_797_672, (224, 224, 3), 1000),
    "resnet50": (25_557_032, (224, 224, 3), 1000),
    "resnet101": (44_549_160, (224, 224, 3), 1000),
    "resnet152": (60_192_808, (224, 224, 3), 1000),
    "resnet20_cifar": (269_722, (32, 32, 3), 10),
    "resnet32_cifar": (464_154, (32, 32, 3), 10),
    "resnet44_cifar": (658_586, (32, 32, 3), 10),
    "resnet56_cifar": (853_018, (32, 32, 3), 10),
    "resnet110_cifar": (1_727_962, (32, 32, 3), 10),
    "densenet121": (7_978_856, (224, 224, 3), 1000),
    "densenet169": (14_149_480, (224, 224, 3), 1000),
    "densenet201": (20_013_928, (224, 224, 3), 1000),
    "densenet_bc_100_12_cifar": (769_162, (32, 32, 3), 10),
    "mobilenet_v1": (4_231_976, (224, 224, 3), 1000),
}
PUBLISHED_JSON = pathlib.Path("/work/shared/reference/model_params.json")
HEAVY_ENV = "CONVJAX_HEAVY"


@pytest.fixture(autouse=True, scope="module")
def fast_tracing_and_compiles():
    """Two CPU-time fixes that change no result.

    1. flax 0.12 checks `value.sharding` each time an RNG stream's counter is bumped; on a
       tracer, JAX builds that AttributeError's message by scanning the whole trace, so
       tracing a model's construction is quadratic in its size (densenet201: ~12 s instead of
       ~1.5 s). The message is discarded, so we make it empty while these tests run.
    2. XLA:CPU spends seconds optimising each small init program; unoptimised it is ~10x
       faster to compile and these nets are tiny at test size.
    """
    from jax._src.interpreters import partial_eval

    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(partial_eval.DynamicJaxprTracer, "_origin_msg", lambda self: "",
                   raising=False)
        yield
    jax.config.update("jax_disable_most_optimizations", before)


def count_params(model: nnx.Module) -> int:
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


# ---- parameter counts ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_parameter_count(name):
    params, (_, _, channels), classes = PUBLISHED[name]
    abstract = nnx.eval_shape(lambda: models.create(name, num_classes=classes,
                                                    in_channels=channels))
    assert count_params(abstract) == params


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registered_defaults_match_published_input(name):
    _, shape, classes = PUBLISHED[name]
    spec = models.spec(name)
    assert (spec.input_shape, spec.num_classes) == (shape, classes)


@pytest.mark.skipif(not PUBLISHED_JSON.exists(), reason="no shared model_params.json here")
def test_copied_table_matches_the_shared_json():
    published = json.loads(PUBLISHED_JSON.read_text())["models"]
    assert {k: v["params"] for k, v in published.items()} == {
        k: v[0] for k, v in PUBLISHED.items()}


def test_running_stats_are_not_counted():
    abstract = nnx.eval_shape(lambda: models.create("resnet20_cifar"))
    stats = sum(v.size for v in jax.tree.leaves(nnx.state(abstract, nnx.BatchStat)))
    assert stats == 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)  # mean and var of each BatchNorm


# ---- forward and backward -----------------------------------------------------------------

# name -> (input side, options): the smallest input each architecture takes; width
# multipliers shrink arithmetic, not the code path.
SMALL = {
    "alexnet_paper_grouped": (64, {"width": 0.25}),
    "alexnet_one_tower": (64, {"width": 0.25}),
    **{f"vgg_{c}": (32, {"width": 0.125}) for c in ("a", "a_lrn", "b", "c", "d", "e", "d_bn")},
    "googlenet": (32, {"width": 0.25}),
    "googlenet_aux": (32, {"width": 0.25}),
    "mobilenet_v1": (32, {"width": 0.25}),
    **{f"resnet{d}": (32, {"width": 0.25}) for d in (18, 34, 50, 101, 152)},
    **{f"resnet{d}_cifar": (16, {}) for d in (20, 32, 44, 56, 110)},
    **{f"densenet{d}": (32, {"width": 0.25}) for d in (121, 169, 201)},
    "densenet_bc_100_12_cifar": (32, {}),
}
# Building a net eagerly and compiling its jitted loss + gradient costs 3-170 s of CPU per
# net on a busy 2-core machine: XLA compiles a sampler per parameter shape (~0.2-0.4 s each
# even unoptimised), then the whole step. So by default only RUN computes real numbers; every
# other net is traced (the same step with `jax.eval_shape`: every layer, shape and gradient
# rule, nothing compiled), except DEEP, whose tracing alone takes 3-9 s and whose blocks are
# traced at reduced depth below. The layers' numerics are checked in test_layers.py.
# CONVJAX_HEAVY=1 runs every net with real numbers (~15 minutes).
RUN = {"lenet5", "lenet_keras_lecture", "alexnet_paper_grouped", "resnet20_cifar"}
DEEP = {"resnet101", "resnet152", "resnet110_cifar", "densenet121", "densenet169",
        "densenet201", "densenet_bc_100_12_cifar"}


def forward_backward(model: nnx.Module, x, y: jax.Array, aux_weight: float = 0.0,
                     abstract: bool = False):
    """One jitted loss + gradient, as a trainer runs it: split once, merge inside; sown
    auxiliary logits (GoogLeNet) are captured and weighted into the loss. `abstract` traces
    it with `jax.eval_shape` instead (x may then be a ShapeDtypeStruct)."""
    graphdef, state = nnx.split(model)

    def loss_fn(m, x):
        logits, aux = nnx.capture(m, nnx.Intermediate)(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        for head in jax.tree.leaves(aux):
            loss += aux_weight * optax.softmax_cross_entropy_with_integer_labels(head, y).mean()
        return loss, (logits, aux)

    def step(state, x):
        m = nnx.merge(graphdef, state)
        (loss, (logits, aux)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(m, x)
        return loss, logits, aux, grads

    return jax.eval_shape(step, state, x) if abstract else jax.jit(step)(state, x)


def check_forward_backward(name: str, side: int, abstract: bool = False, **options):
    """Logits (2, 7), a finite loss, and a finite gradient for every parameter array; with
    `abstract`, the model is built with `nnx.eval_shape` and the step only traced."""
    build = lambda: models.create(name, num_classes=7, **options)
    model = nnx.eval_shape(build) if abstract else build()
    model.train()
    spec_shape = models.spec(name).input_shape  # (H, W, C), or (T, C) for a 1-D net
    shape = (2, side, side, spec_shape[-1]) if len(spec_shape) == 3 else (2, side, spec_shape[-1])
    x = (jax.ShapeDtypeStruct(shape, jnp.float32) if abstract
         else jax.random.normal(jax.random.key(0), shape))
    loss, logits, _, grads = forward_backward(model, x, jnp.array([3, 5]), abstract=abstract)
    assert logits.shape == (2, 7) and loss.shape == ()
    params = nnx.state(model, nnx.Param)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert [g.shape for g in jax.tree.leaves(grads)] == [p.shape for p in jax.tree.leaves(params)]
    if not abstract:
        assert np.isfinite(float(loss))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        assert sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(grads)) > 0


# Classifiers only: the dense-prediction and image-to-image nets (FCN, U-Net, DnCNN, ...) are
# run forward and backward in tests/test_dense_models.py.
CLASSIFIERS = [n for n in models.names() if models.spec(n).output == "class_logits"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward(name):
    heavy = bool(os.environ.get(HEAVY_ENV))
    if name in DEEP and not heavy:
        pytest.skip(f"deep: its blocks are traced by default on a shallower net; "
                    f"run with {HEAVY_ENV}=1")
    side, options = SMALL.get(name, (models.spec(name).input_shape[0], {}))
    check_forward_backward(name, side, abstract=not (heavy or name in RUN), **options)


@pytest.mark.parametrize("name,options", [
    ("densenet_bc_100_12_cifar", {"blocks": (2, 2, 2)}),       # CIFAR stem, 3 blocks
    ("densenet121", {"width": 0.25, "blocks": (1, 1, 1, 1)}),  # ImageNet stem, 4 blocks
])
def test_dense_blocks_at_reduced_depth(name, options):
    """DenseNet's layers and transitions (the DEEP nets' blocks) at a depth cheap to trace."""
    check_forward_backward(name, SMALL[name][0], abstract=not os.environ.get(HEAVY_ENV),
                           **options)


# ---- options and modes --------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"act": "elu", "norm": "none"},
    {"preact": True, "act": "gelu", "shortcut": "projection"},
])
def test_resnet_cifar_option_swaps(options):
    check_forward_backward("resnet20_cifar", 16, **options)


def test_option_swaps_change_the_layers():
    plain = nnx.eval_shape(lambda: models.create("resnet20_cifar", act="elu", norm="none"))
    assert not jax.tree.leaves(nnx.state(plain, nnx.BatchStat))  # no BatchNorm left
    assert plain.stem.layers[0].bias is not None                 # convs regain their bias
    preact = nnx.eval_shape(lambda: models.create("resnet20_cifar", preact=True))
    assert count_params(preact) != count_params(plain)
    strided = nnx.eval_shape(lambda: models.create("vgg_a", pool="strided_conv", width=0.125))
    assert sum(isinstance(m, nnx.Conv) for _, m in nnx.iter_graph(strided)) == 8 + 5
    with pytest.raises(ValueError, match="changes the channel count"):
        models.create("resnet20_cifar", act="glu")


@pytest.mark.parametrize("options", [{"act": "maxout", "pool": "avg"},
                                     {"act": "glu", "pool": "strided_conv", "norm": "batch"}])
def test_vgg_activation_and_pooling_swaps(options):
    check_forward_backward("vgg_a_lrn", 32, abstract=True, width=0.125, **options)


def test_googlenet_aux_heads_in_train_mode_only():
    """Train mode sows both heads' logits (the loss adds 0.3 x their cross-entropy); eval mode
    runs no head. Traced by default; with real numbers under CONVJAX_HEAVY=1."""
    real = bool(os.environ.get(HEAVY_ENV))
    build = lambda: models.create("googlenet_aux", num_classes=7, width=0.25)
    model = build() if real else nnx.eval_shape(build)
    x = (jax.random.normal(jax.random.key(0), (2, 32, 32, 3)) if real
         else jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    model.train()
    loss, logits, aux, grads = forward_backward(model, x, jnp.array([1, 2]), aux_weight=0.3,
                                                abstract=not real)
    heads = jax.tree.leaves(aux)
    assert logits.shape == (2, 7) and len(heads) == 2
    assert all(h.shape == (2, 7) for h in heads)
    if real:
        assert np.isfinite(float(loss))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        # Through the weighted aux losses every weight of both heads gets a gradient.
        assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads["aux"]))
    # eval(), and an inference view of a train-mode model (as the architecture sheet takes it).
    for inference in (nnx.view(model, deterministic=True, use_running_average=True),
                      model.eval() or model):
        graphdef, state = nnx.split(inference)
        logits, aux = jax.eval_shape(
            lambda s, x: nnx.capture(nnx.merge(graphdef, s), nnx.Intermediate)(x), state, x)
        assert logits.shape == (2, 7) and not jax.tree.leaves(aux)


def test_googlenet_paper_variant_builds():
    """The paper's own net: real 5x5 branch, LRN, conv biases and no BatchNorm."""
    abstract = nnx.eval_shape(lambda: models.create("googlenet", b5_kernel=5, norm="none",
                                                    lrn=True))
    assert count_params(abstract) == 6_998_552


def abstract_apply(name: str, part: str | None, side: int, **options):
    """Output shape of `models.create(name)` (or its submodule `part`) on a side x side
    image, traced without allocating or computing anything."""
    def run(x):
        model = models.create(name, **options)
        model.eval()
        return (getattr(model, part) if part else model)(x)
    return jax.eval_shape(run, jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)).shape


@pytest.mark.parametrize("side,feature_side", [(224, 7), (120, 3)])
def test_mobilenet_takes_224_and_120(side, feature_side):
    """The lecture's Keras MobileNet: 7x7x1024 features at 224, 3x3x1024 at 120; global
    pooling gives the classifier the same 1024 inputs either way."""
    assert abstract_apply("mobilenet_v1", "body", side) == (1, feature_side, feature_side, 1024)
    assert abstract_apply("mobilenet_v1", None, side) == (1, 1000)


def test_mobilenet_width_multiplier():
    half = nnx.eval_shape(lambda: models.create("mobilenet_v1", alpha=0.5))
    assert count_params(half) < count_params(
        nnx.eval_shape(lambda: models.create("mobilenet_v1"))) / 2
    assert half.head.kernel.shape == (1, 1, 512, 1000)


def test_fixed_classifiers_see_the_papers_feature_maps_at_224():
    """AlexNet's 6x6x256 and VGG's 7x7x512: the adaptive pool is the identity at 224."""
    assert abstract_apply("alexnet", "convs", 224) == (1, 6, 6, 256)
    assert abstract_apply("vgg16", "convs", 224) == (1, 7, 7, 512)
    assert abstract_apply("googlenet", "stem", 224) == (1, 28, 28, 192)


def test_aliases_resolve():
    for alias, name in [("alexnet", "alexnet_paper_grouped"), ("vgg16", "vgg_d"),
                        ("vgg16_bn", "vgg_d_bn"), ("vgg19", "vgg_e"), ("vgg11", "vgg_a"),
                        ("inception_v1", "googlenet"), ("resnet20", "resnet20_cifar"),
                        ("densenet_bc", "densenet_bc_100_12_cifar"),
                        ("mobilenet", "mobilenet_v1")]:
        assert models.spec(alias).name == name
