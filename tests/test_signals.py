"""1-D networks and signals: causality of the causal convolution and the WaveNet (gradients),
queued generation equal to naive generation, mu-law, the vibration generator (deterministic,
its fault frequencies in the envelope spectrum), `signals:` folders and their errors, and the
two signal tasks trained end to end through `launch.py train`'s loop."""

import os
import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx
from scipy import signal as scipy_signal
from scipy.io import wavfile

import models
from data import mu_law, signal_folder, vibration
from errors import UserError
from models import layers_1d, wavenet


def _tiny_wavenet(seed=0):
    return models.create("wavenet", seed=seed, residual_channels=8, gate_channels=8,
                         skip_channels=8, stacks=2, layers_per_stack=3)


def test_a_causal_conv_output_never_depends_on_a_later_input():
    conv = layers_1d.CausalConv1d(2, 3, 3, dilation=4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (1, 32, 2))
    t = 20
    grad = jax.grad(lambda x: conv(x)[0, t].sum())(x)[0]  # (T, C): d y[t] / d x[s]
    touched = np.flatnonzero(np.abs(np.asarray(grad)).sum(-1) > 0)
    assert touched.tolist() == [t - 8, t - 4, t]   # its taps, none later than t


def test_the_wavenet_sees_exactly_its_receptive_field_of_past_samples():
    net = _tiny_wavenet()
    rf = net.receptive_field
    assert rf == 2 + 2 * (1 + 2 + 4)
    x = jax.nn.one_hot(jax.random.randint(jax.random.key(0), (1, 40), 0, 256), 256)
    t = 35
    grad = jax.grad(lambda x: net.from_one_hot(x)[0, t].sum())(x)[0]
    touched = np.flatnonzero(np.abs(np.asarray(grad)).sum(-1) > 0)
    assert touched.max() == t and touched.min() == t - rf + 1


def test_queued_generation_draws_exactly_the_samples_of_naive_generation():
    net = _tiny_wavenet(seed=3)
    prime = jax.random.randint(jax.random.key(0), (2, 5), 0, 256)
    for temperature in (1.0, 0.7):  # 120 samples: far past the receptive field (16)
        key = jax.random.key(7)
        naive = wavenet.generate_naive(net, prime, 120, key, temperature)
        queued = wavenet.generate_queued(net, prime, 120, key, temperature)
        assert naive.shape == (2, 120)
        np.testing.assert_array_equal(np.asarray(naive), np.asarray(queued))
    other = wavenet.generate_queued(net, prime, 120, jax.random.key(8))
    assert not np.array_equal(np.asarray(other), np.asarray(queued))  # the key matters


def test_mu_law_round_trips_every_code_and_stays_within_half_a_level():
    codes = np.arange(256)
    np.testing.assert_array_equal(mu_law.encode(mu_law.decode(codes)), codes)
    x = np.linspace(-1, 1, 10001)
    companded = lambda v: np.sign(v) * np.log1p(255 * np.abs(v)) / np.log1p(255)
    err = np.abs(companded(mu_law.decode(mu_law.encode(x))) - companded(x))
    assert err.max() <= 1 / 255 + 1e-6   # half of a level's width 2/255
    assert mu_law.encode(np.array([0.0]))[0] == 128 and mu_law.encode(np.array([2.0]))[0] == 255


def test_the_vibration_generator_is_deterministic_and_balanced():
    a, pa = vibration.signal("train", 5)
    b, pb = vibration.signal("train", 5)
    np.testing.assert_array_equal(a, b)
    assert pa == pb and pa.kind == vibration.CLASSES[5 % 4]
    assert not np.array_equal(a, vibration.signal("test", 5)[0])
    assert a.shape == (vibration.LENGTH,) and a.dtype == np.float32


def test_bearing_fault_orders_follow_the_geometry():
    # CWRU's table for the 6205 bearing: BPFI 5.4152, BPFO 3.5848, FTF 0.39828 x shaft speed
    # (its BSF 4.7135 is twice the ball spin frequency).
    orders = vibration.fault_orders()
    assert orders["inner"] == pytest.approx(5.4152, abs=1e-4)
    assert orders["outer"] == pytest.approx(3.5848, abs=1e-4)
    assert orders["cage"] == pytest.approx(0.39828, abs=1e-4)
    assert 2 * orders["ball"] == pytest.approx(4.7135, abs=1e-3)


def _envelope_power_near(x, freqs, width=2.0):
    """Power of the band-passed signal's envelope within `width` Hz of each frequency."""
    b, a = scipy_signal.butter(4, [1500, 5000], btype="bandpass", fs=vibration.SAMPLE_RATE)
    envelope = np.abs(scipy_signal.hilbert(scipy_signal.filtfilt(b, a, x)))
    power = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    f = np.fft.rfftfreq(len(x), 1 / vibration.SAMPLE_RATE)
    return [power[np.abs(f - q) <= width].sum() for q in freqs]


@pytest.mark.parametrize("kind", ["inner", "outer", "ball"])
def test_each_fault_shows_at_its_own_frequency_in_the_envelope_spectrum(kind):
    rng = np.random.default_rng(0)
    p = dataclasses.replace(vibration.draw_params(kind, rng), rpm=1750.0)
    x = vibration.render(p, 2 * vibration.SAMPLE_RATE, rng)  # 2 s: 0.5 Hz bins
    kinds = ["inner", "outer", "ball"]
    freqs = [vibration.fault_orders()[k] * 1750 / 60 for k in kinds]
    power = _envelope_power_near(x, freqs)
    assert int(np.argmax(power)) == kinds.index(kind)
    assert max(power) > 5 * sorted(power)[-2]


def _save_signals(root, shape=(256, 1), per_class=4):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, name in enumerate(("healthy", "fault")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                t = np.arange(shape[0])
                x = np.sin(2 * np.pi * (k + 1) * t / 32)[:, None] + 0.1 * rng.standard_normal(shape)
                np.save(folder / f"{i}.npy", x.astype(np.float32))


def test_a_signal_folder_reads_its_classes_and_signals(tmp_path):
    _save_signals(tmp_path)
    wavfile.write(tmp_path / "train" / "fault" / "extra.wav", 8000,
                  (np.sin(np.arange(256) / 5) * 20000).astype(np.int16))
    name = f"signals:{tmp_path}"
    source = signal_folder.SignalFolderSource(name, "train")
    assert len(source) == 9 and signal_folder.class_names(name) == ["fault", "healthy"]
    record = source[0]
    assert record["signal"].shape == (256, 1) and record["signal"].dtype == np.float32
    assert signal_folder.describe(name) == "signals: 256 samples x 1 channel(s) at 8000 Hz"
    assert len(signal_folder.SignalFolderSource(name, "test[:50%]")) == 4


@pytest.mark.parametrize("bad, expected", [
    (lambda d: np.save(d / "x.npy", np.zeros((1, 256), np.float32)), "channels x samples"),
    (lambda d: np.save(d / "x.npy", np.zeros((300, 1), np.float32)), "needs the same samples"),
    (lambda d: np.save(d / "x.npy", np.zeros((256, 1, 2), np.float32)), "is not a signal of T"),
    (lambda d: (d / "x.npy").write_bytes(b"not an array"), "cannot read"),
])
def test_a_wrong_signal_file_is_one_line_naming_it(tmp_path, bad, expected):
    _save_signals(tmp_path)
    bad(tmp_path / "test" / "fault")
    with pytest.raises(UserError, match=expected) as err:
        signal_folder.SignalFolderSource(f"signals:{tmp_path}", "train")
    assert "\n" not in str(err.value) and "x.npy" in str(err.value)


def test_a_wav_at_another_sample_rate_is_refused(tmp_path):
    _save_signals(tmp_path)
    (tmp_path / "sample_rate.txt").write_text("8000\n")
    wavfile.write(tmp_path / "train" / "fault" / "fast.wav", 16000, np.zeros(256, np.int16))
    with pytest.raises(UserError, match="fast.wav: sample rate 16000 Hz, but the dataset's is "
                                        "8000 Hz"):
        signal_folder.SignalFolderSource(f"signals:{tmp_path}", "train")


def _signal_config(task, data):
    import tasks
    from training.config import base_config

    c = base_config()
    tasks.configure(c, task)
    c.data.name = f"signals:{data}"
    return c


@pytest.mark.skipif(not os.environ.get("CONVJAX_HEAVY"), reason="a WaveNet run, then generation (.ci/run runs it)")
def test_a_wavenet_trains_on_a_signal_folder_and_generates_from_its_run(tmp_path, capsys):
    from training import generate_cli, loop

    _save_signals(tmp_path / "data")
    c = _signal_config("next_sample", tmp_path / "data")
    c.model.name = "wavenet"
    c.model.update(residual_channels=8, gate_channels=8, skip_channels=8, stacks=1,
                   layers_per_stack=4)
    c.task.segment = 64
    c.train.update(steps=4, batch_size=8, log_every_steps=2)
    c.schedule.warmup_steps = 1
    c.eval.update(every_steps=4, batch_size=8)
    c.checkpoint.every_steps = 4
    summary = loop.train(c, tmp_path / "run", show_progress=False)
    (tmp_path / "cnn").mkdir()  # a run directory of another task
    (tmp_path / "cnn" / "config.json").write_text(_signal_config("signal_classification",
                                                                 tmp_path / "data").to_json())
    assert summary["steps"] == 4 and 0 < summary["final_metrics"]["test/bits_per_sample"] < 9
    assert (tmp_path / "run" / "samples.png").exists()
    out = tmp_path / "gen.npz"
    run = ["--workdir", str(tmp_path / "run"), "--out", str(out)]
    generate_cli.main(run + ["--n", "40", "--count", "2", "--prime", "eval", "--prime-samples",
                             "8"])
    assert "2 signal(s) of 40 samples" in capsys.readouterr().out
    with np.load(out) as saved:
        assert saved["codes"].shape == (2, 40) and saved["prime"].shape == (2, 8)
        np.testing.assert_array_equal(saved["signals"], mu_law.decode(saved["codes"]))
    with pytest.raises(UserError, match="--n must be a positive whole number"):
        generate_cli.main(run + ["--n", "0"])
    with pytest.raises(UserError, match="generate needs a run of task next_sample"):
        generate_cli.main(["--workdir", str(tmp_path / "cnn"), "--out", str(out), "--n", "4"])


def test_signal_classification_standardises_crops_and_refuses_images(tmp_path):
    import tasks
    from data import inputs

    _save_signals(tmp_path / "data")
    c = _signal_config("signal_classification", tmp_path / "data")
    c.task.crop = 100
    data = inputs.open_data(c, train=False)
    task = tasks.create(c, data.info)
    task.check()
    example = task.decode(data.eval_source[0])
    assert example["signal"].shape == (256, 1)
    np.testing.assert_allclose(example["signal"].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(example["signal"].std(), 1, atol=1e-4)
    window = task.train_example(example, np.random.default_rng(0))["signal"]
    assert window.shape == (100, 1)
    centred = task.eval_example(example, 0)["signal"]
    np.testing.assert_array_equal(centred, example["signal"][78:178])
    c.data.augment = "flip_lr"
    with pytest.raises(UserError, match="image operations"):
        tasks.create(c, data.info).check()


def test_the_architecture_sheet_gives_receptive_fields_in_samples():
    from analysis import sheet

    cnn = sheet.summarize("cnn1d", (2048, 1), check_xla=False)
    rows = {layer.name: layer for layer in cnn.layers}
    assert rows["convs.0.conv"].output_shape == (512, 16)
    assert rows["convs.0.conv"].receptive_field == (32,) and rows["pool#1"].stride == (8,)
    net = _tiny_wavenet()
    wave = sheet.summarize_module(net, (64, 1), codes=True, check_xla=False)
    assert wave.output_shape == (64, 256)
    assert wave.layers[-1].receptive_field == (net.receptive_field,)


def test_predict_classifies_signal_files_as_evaluation_sees_them(tmp_path, capsys):
    """`launch.py predict` on a signal run: a file and a folder of .npy/.wav signals, each
    standardised and centre-cropped as evaluation does (the logits equal the network's on
    that window), and one-line errors for signals the network cannot take."""
    import csv

    from training import loop, predict_cli, run_dir

    _save_signals(tmp_path / "data")
    c = _signal_config("signal_classification", tmp_path / "data")
    c.model.update(name="cnn1d", input_length=128, widths=(8, 8), hidden=16)
    c.task.crop = 128
    c.train.update(steps=2, batch_size=8, log_every_steps=2)
    c.schedule.warmup_steps = 1
    c.eval.update(every_steps=2, batch_size=8)
    c.checkpoint.every_steps = 2
    loop.train(c, tmp_path / "run", show_progress=False)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    signal = 3.0 * np.sin(np.arange(300) / 4.0)[:, None].astype(np.float32)
    np.save(inputs / "a.npy", signal)
    wavfile.write(inputs / "b.wav", 8000, (np.sin(np.arange(256) / 7) * 9000).astype(np.int16))
    run = ["--workdir", str(tmp_path / "run")]
    predict_cli.main(run + ["--input", str(inputs), "--out", str(tmp_path / "out")])
    assert "2 input(s) through cnn1d" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [r["file"] for r in rows] == ["a.npy", "b.wav"]
    assert {r["class"] for r in rows} <= {"fault", "healthy"}
    logits = np.load(tmp_path / "out" / "logits.npy")
    trained = run_dir.open_trained(tmp_path / "run", "latest")
    window = (signal - signal.mean()) / signal.std()
    window = window[86:214]  # the centred 128 of 300, as eval_example takes it
    np.testing.assert_allclose(logits[0], np.asarray(trained.model(window[None]))[0],
                               rtol=1e-4, atol=1e-4)
    np.save(inputs / "two.npy", np.zeros((300, 2), np.float32))
    with pytest.raises(UserError, match="2 channel"):
        predict_cli.main(run + ["--input", str(inputs / "two.npy"), "--out", str(tmp_path / "o")])
    np.save(tmp_path / "short.npy", np.zeros(100, np.float32))
    with pytest.raises(UserError, match="shorter than the run's task.crop=128"):
        predict_cli.main(run + ["--input", str(tmp_path / "short.npy"), "--out",
                                str(tmp_path / "o")])
    (tmp_path / "pictures").mkdir()
    with pytest.raises(UserError, match="holds no signals"):
        predict_cli.main(run + ["--input", str(tmp_path / "pictures"), "--out",
                                str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # nothing written before every input was checked
