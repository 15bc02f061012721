"""`launch.py show-data`: a grid PNG of augmented training examples, of a known pixel size, with
mixed labels and normalisation undone."""

import numpy as np
from PIL import Image

from data import stats
from training import show_data_cli as show_cli


def test_digits_grid_has_the_expected_size(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert show_cli.main(["--n", "16", "--out", str(out)]) == 0
    assert show_cli.grid_size_px(16) == (500, 600)  # 4 x 4 cells of 125 px + 100 px caption
    with Image.open(out) as image:
        assert image.size == (500, 600)
    assert f"wrote {out}" in capsys.readouterr().out


def test_mixed_and_normalised_folder_examples(tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "_configured_data_dir", None)
    rng = np.random.default_rng(0)
    for label, name in enumerate(("a", "b")):
        (tmp_path / "ds" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), np.uint8)).save(
                tmp_path / "ds" / name / f"{i}.png")
    dataset, data_dir = f"folder:{tmp_path / 'ds'}", str(tmp_path / "dd")
    stats.compute_and_cache(dataset, image_size=8, data_dir=data_dir)
    args = [f"--config.data.name={dataset}", f"--config.data.data_dir={data_dir}",
            "--config.data.eval_split=train", "--config.data.image_size=8",
            "--config.data.pad=0", f"--config.data.augment=flip_lr|normalize('{dataset}')",
            "--config.data.device_augment=", "--config.train.mix=mixup",
            "--config.train.mix_alpha=1.0", "--config.train.label_smoothing=0.1"]
    from data import inputs
    from training import cli

    config, _ = cli.parse(args, prog="test")
    images, weights, undone = show_cli.examples(config, inputs.open_data(config), 5)
    assert undone and images.shape == (5, 8, 8, 3) and 0 <= images.min() <= images.max() <= 1
    # Label smoothing taken out: each example is two labels whose weights sum to one.
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)
    assert (np.sort(weights, 1)[:, -2:].sum(1) > 0.999).all() and (weights[:, 1] > 0.01).any()

    out = tmp_path / "mixed.png"
    show_cli.draw(images, weights, ["a", "b"], "caption", out)
    with Image.open(out) as image:
        assert image.size == show_cli.grid_size_px(5) == (500, 350)


def test_own_flags_leave_config_flags_alone():
    args, rest = show_cli._own_flags(["--config", "x.py", "--n=3", "--config.seed=1", "--out", "o"])
    assert (args.n, args.out, rest) == (3, "o", ["--config", "x.py", "--config.seed=1"])
