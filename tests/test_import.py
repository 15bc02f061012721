"""Weight import from torchvision: safetensors only, one-line errors for tensors that do not
fit, the NHWC flatten permutation, logit parity with PyTorch twins, and an imported run that
`predict` applies with the source's preprocessing."""

import os

import numpy as np
import pytest

import models
from errors import UserError
from models.weights import torchvision as tv
from training import import_cli

torch = pytest.importorskip("torch")
from benchmarks import torchvision_twins as twins  # noqa: E402  (needs torch)

TINY = (1, 1, 1, 1)  # ResNet-18's blocks, one per stage: every tensor kind at little cost


def tiny_resnet_twin(classes: int = 10):
    return twins.randomize(twins.ResNet(twins.BasicBlock, list(TINY), classes), seed=1)


def state_dict(twin) -> dict:
    return {k: v.numpy() for k, v in twin.state_dict().items()}


def tiny_resnet(classes: int = 10):
    return models.create("resnet18", num_classes=classes, depths=TINY)


def test_a_pickle_file_is_refused_with_the_conversion_command(tmp_path):
    path = tmp_path / "resnet18.pth"
    path.write_bytes(b"not read")
    with pytest.raises(UserError) as err:
        import_cli.read_safetensors(path)
    text = str(err.value)
    assert "\n" not in text and "weights_only=True" in text and "save_file" in text
    assert str(tmp_path / "resnet18.safetensors") in text


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.pop("layer2.0.conv1.weight"), "lack 1 tensor(s)"),
    (lambda t: t.update({"layer5.0.conv1.weight": np.zeros(3)}), "have 1 tensor(s)"),
    (lambda t: t.update({"fc.bias": np.zeros(11, np.float32)}), "do not fit"),
])
def test_tensors_that_do_not_fit_are_named_in_one_line(damage, message):
    tensors = state_dict(tiny_resnet_twin())
    damage(tensors)
    with pytest.raises(UserError) as err:
        tv.load(tiny_resnet(), "resnet18", tensors)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "layer" in str(err.value) or "fc.bias" in str(err.value)


def test_first_dense_layer_is_permuted_from_nchw_to_nhwc_flatten():
    """torch flattens (C, H, W), convjax (H, W, C): the same map gives the same outputs."""
    c, side, out = 5, 3, 4
    dense = torch.nn.Linear(c * side * side, out, bias=False)
    x = torch.randn(2, c, side, side)
    expected = dense(torch.flatten(x, 1)).detach().numpy()
    kernel = tv.nhwc_dense_kernel(dense.weight.detach().numpy(), side)
    got = x.numpy().transpose(0, 2, 3, 1).reshape(2, -1) @ kernel
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_resnet_logits_agree_with_the_torch_twin():
    """Random weights and random BatchNorm statistics; an even and an odd input size."""
    twin = tiny_resnet_twin()
    model = tiny_resnet()
    tv.load(model, "resnet18", state_dict(twin))
    diffs = import_cli.compare(twin, model, (32, 37))
    assert max(diffs.values()) < 1e-4, diffs


def test_an_imported_run_predicts_with_the_sources_preprocessing(tmp_path):
    """`predict` on the run directory gives the twin's logits on torchvision's transform of
    the image (shorter side 256, centre crop 224, ImageNet mean and std)."""
    from data import image_files, preprocess
    from training import predict_cli

    twin = tiny_resnet_twin()
    c, info, model = import_cli.build("resnet18", state_dict(twin), depths=TINY)
    run = tmp_path / "run"
    import_cli.write_run(run, c, info, model, {"from": "torchvision", "model": "resnet18"})
    for name in ("config.json", "environment.json", "data_info.json", "source.json"):
        assert (run / name).is_file(), name
    image = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    image_files.save_png(image, tmp_path / "photo.png")
    assert predict_cli.main(["--workdir", str(run), "--input", str(tmp_path / "photo.png"),
                             "--out", str(tmp_path / "preds")]) == 0
    logits = np.load(tmp_path / "preds" / "logits.npy")
    x = preprocess.imagenet_style(image, 256, 224, tv.IMAGENET_MEAN, tv.IMAGENET_STD)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()
    assert np.max(np.abs(logits - expected)) / np.max(np.abs(expected)) < 1e-4


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"),
                    reason="builds every torchvision network twice (~20 min on 2 cores); "
                           "set CONVJAX_HEAVY=1")
@pytest.mark.parametrize("name", list(tv.SOURCES))
def test_every_family_agrees_with_its_torchvision_twin(name):
    twin = twins.randomize(twins.build(name))
    tensors = state_dict(twin)
    _, _, model = import_cli.build(name, tensors)
    diffs = import_cli.compare(twin, model, import_cli.CHECK_SIZES)
    print(name, diffs)
    assert max(diffs.values()) < 1e-4, diffs
