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


def _timm_config(path, size=224, crop_pct=0.95, interpolation="bicubic"):
    import json

    cfg = {"architecture": "resnet18", "pretrained_cfg": {
        "input_size": [3, size, size], "crop_pct": crop_pct, "interpolation": interpolation,
        "mean": list(tv.IMAGENET_MEAN), "std": list(tv.IMAGENET_STD)}}
    path.write_text(json.dumps(cfg))


def test_timm_vgg_names_map_back_onto_torchvisions():
    """timm's VGG holds fc6 and fc7 as convolutions on the 7x7 map and names the head
    `head.fc`; mapped back, the state dict is torchvision's, tensor for tensor."""
    from models.weights import timm

    rng = np.random.default_rng(0)
    torchvision_dict = {"features.0.weight": rng.random((64, 3, 3, 3)),
                        "features.0.bias": rng.random(64),
                        "classifier.0.weight": rng.random((8, 512 * 7 * 7)),
                        "classifier.0.bias": rng.random(8),
                        "classifier.3.weight": rng.random((8, 8)),
                        "classifier.3.bias": rng.random(8),
                        "classifier.6.weight": rng.random((10, 8)),
                        "classifier.6.bias": rng.random(10)}
    g = torchvision_dict
    timm_dict = {"features.0.weight": g["features.0.weight"],
                 "features.0.bias": g["features.0.bias"],
                 "pre_logits.fc1.weight": g["classifier.0.weight"].reshape(8, 512, 7, 7),
                 "pre_logits.fc1.bias": g["classifier.0.bias"],
                 "pre_logits.fc2.weight": g["classifier.3.weight"].reshape(8, 8, 1, 1),
                 "pre_logits.fc2.bias": g["classifier.3.bias"],
                 "head.fc.weight": g["classifier.6.weight"], "head.fc.bias": g["classifier.6.bias"]}
    mapped = timm.torchvision_names("vgg11", timm_dict)
    assert mapped.keys() == torchvision_dict.keys()
    for key, value in torchvision_dict.items():
        np.testing.assert_array_equal(mapped[key], value, err_msg=key)
    assert timm.torchvision_names("resnet18", timm_dict) == timm_dict  # the same names


def test_a_timm_run_predicts_with_its_pretrained_cfg(tmp_path):
    """timm's ResNet weights (torchvision's names) with the hub's config.json: the run resizes
    the shorter side to floor(224 / 0.95) = 235 bicubic and crops 224, and `predict` gives the
    twin's logits on that transform."""
    from PIL import Image
    from safetensors.numpy import save_file

    from data import image_files, preprocess
    from training import predict_cli

    twin = tiny_resnet_twin()
    save_file(state_dict(twin), str(tmp_path / "model.safetensors"))
    _timm_config(tmp_path / "config.json")
    tensors, transform = import_cli.from_timm("resnet18", tmp_path / "model.safetensors")
    assert transform == {"image_size": 224, "resize_shorter": 235, "center_crop": 224,
                         "resize_interpolation": "bicubic", "mean": tv.IMAGENET_MEAN,
                         "std": tv.IMAGENET_STD}
    c, info, model = import_cli.build("resnet18", tensors, transform, depths=TINY)
    run = tmp_path / "run"
    import_cli.write_run(run, c, info, model, {"from": "timm", "model": "resnet18"})
    image = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    image_files.save_png(image, tmp_path / "photo.png")
    assert predict_cli.main(["--workdir", str(run), "--input", str(tmp_path / "photo.png"),
                             "--out", str(tmp_path / "preds")]) == 0
    logits = np.load(tmp_path / "preds" / "logits.npy")
    resized = np.asarray(Image.fromarray(image).resize((235, 271), Image.Resampling.BICUBIC))
    x = preprocess.center_crop(resized, 224).astype(np.float32) / 255.0
    x = (x - np.float32(tv.IMAGENET_MEAN)) / np.float32(tv.IMAGENET_STD)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()
    assert np.max(np.abs(logits - expected)) / np.max(np.abs(expected)) < 1e-4


@pytest.mark.parametrize("model,config,message", [
    ("alexnet", True, "not a timm network"),
    ("resnet18", False, "config.json does not exist"),
])
def test_timm_import_errors_are_one_line(tmp_path, model, config, message):
    from safetensors.numpy import save_file

    save_file({"fc.weight": np.zeros((2, 2), np.float32)}, str(tmp_path / "model.safetensors"))
    if config:
        _timm_config(tmp_path / "config.json")
    argv = ["--from", "timm", "--model", model, "--weights", str(tmp_path / "model.safetensors"),
            "--out", str(tmp_path / "run")]
    with pytest.raises(UserError, match=message) as err:
        import_cli.main(argv)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()
