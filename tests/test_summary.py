"""The architecture sheet (`launch.py summary`): LeNet-5 against a hand count, ResNet-50 against
XLA and the known totals, receptive fields against the lecture's formula and a gradient."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import run_launch

import models
from errors import UserError
from analysis import sheet as summary, summary_cli
from models import layers


def _sheet_json(capsys, *argv) -> dict:
    assert summary_cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_lenet5_sheet_matches_the_hand_count(capsys):
    sheet = _sheet_json(capsys, "lenet5", "--json")
    rows = {row["name"]: row for row in sheet["layers"]}
    assert list(rows) == ["c1", "pool#1", "c3", "pool#2", "c5", "f6", "head"]  # pool is reused

    # Convolutions: 2 FLOPs per multiply-add at every output, plus 1 per output for the bias.
    # Average pooling 2x2: 3 adds and 1 divide per output.
    hand = {  # name: (output shape, params, FLOPs)
        "c1": ((28, 28, 6), 5 * 5 * 1 * 6 + 6, 28 * 28 * 6 * (5 * 5 * 1) * 2 + 28 * 28 * 6),
        "pool#1": ((14, 14, 6), 0, 14 * 14 * 6 * 3 + 14 * 14 * 6),
        "c3": ((10, 10, 16), 5 * 5 * 6 * 16 + 16, 10 * 10 * 16 * (5 * 5 * 6) * 2 + 10 * 10 * 16),
        "pool#2": ((5, 5, 16), 0, 5 * 5 * 16 * 3 + 5 * 5 * 16),
        "c5": ((1, 1, 120), 5 * 5 * 16 * 120 + 120, 120 * (5 * 5 * 16) * 2 + 120),
        "f6": ((84,), 120 * 84 + 84, 84 * 120 * 2 + 84),
        "head": ((10,), 84 * 10 + 10, 10 * 84 * 2 + 10),
    }
    for name, (shape, params, flops) in hand.items():
        assert (tuple(rows[name]["output_shape"]), rows[name]["params"], rows[name]["flops"]) \
            == (shape, params, flops), name
    # Between the layers: LeCun's tanh 1.7159 * tanh(2x/3) after c1, c3, c5 and f6 is a
    # multiply, a divide and a multiply (tanh itself is a transcendental, which XLA counts apart).
    between = (28 * 28 * 6 + 10 * 10 * 16 + 120 + 84) * 3
    assert sheet["flops_between_layers"] == between
    assert sheet["params"] == 61_706 == sum(p for _, p, _ in hand.values())
    assert sheet["flops_forward"] == sum(f for _, _, f in hand.values()) + between == 865_386
    # XLA's simplifier folds 1.7159 * tanh(2x / 3)'s "* 2 / 3" into one multiply: -0.75%.
    assert sheet["flops_forward"] == pytest.approx(sheet["xla_flops_unfused"], rel=0.02)
    # The sheet traces convolutions as convolutions, whatever the CPU lowers them to
    # (models/conv_lowering.py: C1 and C3 as banded matmuls, 6.4x and 2.8x the arithmetic).
    assert sheet["xla_flops_unfused"] <= sheet["xla_flops"] <= 1.01 * sheet["flops_forward"]
    assert sheet["flops_forward"] == sheet["xla_flops_unoptimized"]
    assert 2 * sheet["flops_forward"] < sheet["flops_forward_backward"] \
        < 3 * sheet["flops_forward"]
    # float32 layer outputs: 28*28*6 + 14*14*6 + 10*10*16 + 5*5*16 + 120 + 84 + 10 values.
    assert sheet["activation_bytes"] == 4 * (4704 + 1176 + 1600 + 400 + 120 + 84 + 10)

    # Receptive fields: C1 sees 5x5; S2 = P + K - 1 = 2 + 5 - 1 = 6 (lecture formula); then
    # r += (k - 1) * jump: C3 = 6 + 4*2 = 14, S4 = 14 + 1*2 = 16, C5 = 16 + 4*4 = 32.
    assert [rows[n]["receptive_field"] for n in hand] == [5, 6, 14, 16, 32, "global", "global"]
    assert [rows[n]["stride"] for n in list(hand)[:5]] == [1, 2, 2, 4, 4]

    text = summary_cli.format_sheet(summary.summarize("lenet5", check_xla=False))
    assert "pool#2" in text and "global" in text and "61,706" in text


@pytest.mark.skipif("resnet50" not in models.names(), reason="resnet50 is not registered yet")
def test_resnet50_totals_match_xla_and_the_known_counts():
    sheet = summary.summarize("resnet50")  # abstract trace and a compile; no 224x224 forward
    assert sheet.input_shape == (224, 224, 3)
    assert sheet.params == 25_557_032  # torchvision resnet50
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops, rel=0.02)
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops_unfused, rel=1e-4)
    # The known ~4.1 G multiply-adds count the taps on zero padding too.
    assert sheet.flops_forward_dense == pytest.approx(2 * 4.1e9, rel=0.02)
    assert sheet.flops_forward_backward == pytest.approx(3 * sheet.flops_forward, rel=0.05)
    # Stem 7x7/2: 7 (jump 2); max pool 3x3/2: 11 (jump 4); each 3x3 conv adds 2*jump: stage 1
    # 3 blocks: 11 + 3*8 = 35; stage 2 (first 3x3 at jump 4, then 8): 35 + 8 + 3*16 = 91;
    # stage 3: 91 + 16 + 5*32 = 267; stage 4: 267 + 32 + 2*64 = 427 at jump 32.
    convs = [layer for layer in sheet.layers if layer.type == "Conv"]
    assert (convs[-1].receptive_field, convs[-1].stride) == ((427, 427), (32, 32))
    assert sheet.layers[-1].receptive_field == (summary.GLOBAL,) * 2


def test_deep_residual_stack_agrees_with_xla_without_fusion():
    """XLA's CPU fusion recomputes the residual stream's norm + add + ReLU in each consumer, so
    the compiled ResNet-56 does more arithmetic than the network (+2.8% with the locked jax);
    without fusion (every other optimization on) XLA's count is the sheet's."""
    sheet = summary.summarize("resnet56_cifar")
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops_unfused, rel=1e-4)
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops_unoptimized, rel=1e-6)
    assert sheet.xla_flops >= sheet.xla_flops_unfused


def test_a_gap_to_xla_is_noted_with_its_cause():
    counts = lambda compiled, unfused: {"compiled": compiled, "unfused": unfused,
                                        "unoptimized": 100.0}
    assert summary._xla_notes(100, counts(101.0, 100.0)) == []
    [fusion] = summary._xla_notes(100, counts(105.0, 100.0))
    assert "+5.0%" in fusion and "agrees without fusion" in fusion
    [miscount] = summary._xla_notes(100, counts(105.0, 105.0))
    assert "without fusion is +5.0%" in miscount and "counts differently" in miscount
    assert summary._xla_notes(100, {"compiled": None, "unfused": None, "unoptimized": 100.0}) == []


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"),
                    reason="compiles every registered net twice (~5 min on 2 cores); "
                           "set CONVJAX_HEAVY=1")
# A GAN's two players are two networks with two inputs: the sheet describes one of one.
@pytest.mark.parametrize("name", [n for n in models.names() if models.spec(n).output != "gan"])
def test_every_network_flops_agree_with_xla(name):
    sheet = summary.summarize(name)
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops_unoptimized, rel=1e-4)
    assert sheet.flops_forward == pytest.approx(sheet.xla_flops_unfused, rel=0.02)
    # Fusion recomputes cheap elementwise work (norm, activation) in each consumer: +4.1% for
    # ResNet-110 (the sheet compiles XLA's convolutions; with the CPU's patches lowering it
    # was +9.1%, the recomputation repeated in each patch slice).
    assert sheet.xla_flops_unfused * 0.999 <= sheet.xla_flops <= 1.10 * sheet.flops_forward


# --- receptive fields: formula and gradient ------------------------------------------------

_ONES = nnx.initializers.constant(0.1)  # positive weights: no gradient cancels


def _conv(i, o, k, stride=1, padding="SAME", dilation=1):
    return nnx.Conv(i, o, (k, k), stride, padding=padding, kernel_dilation=dilation,
                    kernel_init=_ONES, bias_init=_ONES, rngs=nnx.Rngs(0))


class ConvPool(nnx.Module):
    """The lecture's unit: a KxK stride-1 conv then a PxP pool."""

    def __init__(self, k, p):
        self.conv, self.pool = _conv(2, 3, k, padding="VALID"), layers.Pool("avg", p)

    def __call__(self, x):
        return self.pool(self.conv(x))


class Branchy(nnx.Module):
    """Residual block with a strided shortcut, an Inception-like concatenation of 1x1, 3x3 and
    dilated 3x3 branches, a transposed-conv-free head: every RF rule that branches use."""

    def __init__(self):
        self.stem, self.pool = _conv(2, 4, 3), layers.Pool("avg", 3, 2, padding="SAME")
        self.a, self.b = _conv(4, 4, 3, stride=2), _conv(4, 4, 3)
        self.shortcut = _conv(4, 4, 1, stride=2)
        self.one, self.three = _conv(4, 2, 1), _conv(4, 2, 3)
        self.dilated = _conv(4, 2, 3, dilation=2)
        self.head = _conv(6, 1, 3, padding=((0, 2), (1, 1)))

    def __call__(self, x):
        x = self.pool(nnx.relu(self.stem(x)))
        x = nnx.relu(self.b(nnx.relu(self.a(x))) + self.shortcut(x))
        x = jnp.concatenate([self.one(x), self.three(x), self.dilated(x)], axis=-1)
        return self.head(x)


def _measured(net, size: int, row: int, col: int):
    """Bounding box (top, left, height, width) of d out[row, col] / d input."""
    def center(x):
        return net(x)[0, row, col, :].sum()

    grad = jax.jit(jax.grad(center))(jnp.ones((1, size, size, 2)))
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
    return rows.min(), cols.min(), rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("k,p", [(5, 2), (3, 3)])
def test_receptive_field_of_conv_then_pool_is_p_plus_k_minus_1(k, p):
    net = ConvPool(k, p)
    last = summary.summarize_module(net, (24, 24, 2), check_xla=False).layers[-1]
    assert last.receptive_field == (p + k - 1,) * 2 and last.stride == (p,) * 2
    _, _, h, w = _measured(net, 24, 2, 2)
    assert (h, w) == (p + k - 1,) * 2


def test_receptive_field_through_branches_matches_the_gradient():
    net, size = Branchy(), 64
    sheet = summary.summarize_module(net, (size, size, 2), check_xla=False)
    last = sheet.layers[-1]
    # stem 3 (jump 1); pool 3x3/2: 5 (jump 2); a 3x3/2: 9 (jump 4); b 3x3: 17, the shortcut's
    # 1x1/2 lies inside it; branches 1x1, 3x3, 3x3 dilated 2: 17 + 2*2*4 = 33; head 3x3: 41.
    assert last.receptive_field == (41, 41) and last.stride == (4, 4)
    out_h, out_w = sheet.output_shape[:2]
    top, left, h, w = _measured(net, size, out_h // 2, out_w // 2)
    assert (h, w) == (41, 41)
    # The effective stride is how far the field moves from one output pixel to the next.
    top2, left2, _, _ = _measured(net, size, out_h // 2 + 1, out_w // 2 + 1)
    assert (top2 - top, left2 - left) == (4, 4)
    names = [layer.name for layer in sheet.layers]
    assert names == ["stem", "pool", "a", "b", "shortcut", "one", "three", "dilated", "head"]
    assert [layer.kernel for layer in sheet.layers][-2:] == ["3x3/1 d2", "3x3/1"]


class StackedPatches(nnx.Module):
    """A 3x3 convolution written as patches: shifted slices stacked on a new axis ahead of the
    spatial ones, moved last, flattened into features, then a dense layer."""

    def __init__(self):
        self.dense = nnx.Linear(18, 4, kernel_init=_ONES, rngs=nnx.Rngs(0))

    def __call__(self, x):
        b, h, w, c = x.shape
        planes = jnp.stack([x[:, u:u + h - 2, v:v + w - 2] for u in range(3) for v in range(3)],
                           axis=1)
        return self.dense(jnp.moveaxis(planes, 1, 3).reshape(b, h - 2, w - 2, 9 * c))


def test_receptive_field_through_stacked_patches_matches_the_gradient():
    net = StackedPatches()
    last = summary.summarize_module(net, (12, 12, 2), check_xla=False).layers[-1]
    assert last.receptive_field == (3, 3) and last.stride == (1, 1)
    assert _measured(net, 12, 4, 4)[2:] == (3, 3)


# --- the recorder --------------------------------------------------------------------------


class Shuffle(nnx.Module):
    """A parameter-free custom layer (depth to space), unknown to the summary."""

    def __call__(self, x):
        b, h, w, c = x.shape
        x = x.reshape(b, h, w, c // 4, 2, 2).transpose(0, 1, 4, 2, 5, 3)
        return x.reshape(b, 2 * h, 2 * w, c // 4)


class Reused(nnx.Module):
    def __init__(self):
        self.conv, self.up = _conv(2, 8, 3), Shuffle()
        self.twice = _conv(2, 2, 3)

    def __call__(self, x):
        return self.twice(self.twice(self.up(self.conv(x))))


def test_any_leaf_module_is_a_row_and_a_reused_one_is_counted_once():
    call = Shuffle.__call__
    sheet = summary.summarize_module(Reused(), (8, 8, 2), check_xla=False)
    assert Shuffle.__call__ is call  # the recorder put the class back as it was
    assert [(r.name, r.output_shape, r.params) for r in sheet.layers] == [
        ("conv", (8, 8, 8), 3 * 3 * 2 * 8 + 8), ("up", (16, 16, 2), 0),
        ("twice#1", (16, 16, 2), 3 * 3 * 2 * 2 + 2), ("twice#2", (16, 16, 2), 0)]
    assert sheet.params == sum(r.params for r in sheet.layers)
    # Pixel shuffle halves the jump and keeps the field; the 3x3 convs after it add 2 * 1/2.
    assert [(r.receptive_field[0], r.stride[0]) for r in sheet.layers] == [
        (3, 1), (3, 0.5), (4, 0.5), (5, 0.5)]


# --- the command line ----------------------------------------------------------------------


def test_bad_model_name_exits_2_with_one_line():
    result = run_launch("summary", "nope", timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'nope'")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["lenet5", "--input", "32by32"],
                                  ["lenet5", "--input", "0x32x1"],
                                  ["lenet5", "--input", "8x8x1"],       # too small for C5
                                  ["lenet5", "--num-classes", "0"]])
def test_bad_input_is_a_user_error(argv):
    with pytest.raises(UserError):
        summary_cli.main(argv)
