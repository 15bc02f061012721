"""The embedded `vibration` dataset: synthetic accelerometer signals of a rolling-element bearing,
healthy or with a fault on the inner race, the outer race or a ball, standing in for the
wind-turbine condition monitoring of the notes (no download; deterministic).

Geometry: the SKF 6205 deep-groove ball bearing of the Case Western Reserve University
bearing data: n = 9 balls of diameter d = 7.94 mm on a pitch diameter D = 39.04 mm, contact
angle phi = 0. With the shaft turning at f_r Hz (outer race fixed), a defect is struck at

    outer race  BPFO = n/2 f_r (1 - d/D cos phi)              = 3.585 f_r
    inner race  BPFI = n/2 f_r (1 + d/D cos phi)              = 5.415 f_r
    ball        BSF  = D/(2d) f_r (1 - (d/D cos phi)^2)       = 2.357 f_r  (ball spin)
    cage        FTF  = f_r/2 (1 - d/D cos phi)                = 0.398 f_r

(e.g. Randall & Antoni 2011, "Rolling element bearing diagnostics - a tutorial", eq. 1-4;
a ball spall meets both races once per spin turn, so real spectra often show 2 x BSF; this
generator strikes once per turn, at BSF.)

One signal, `LENGTH` samples at `SAMPLE_RATE` Hz, is the sum of
- shaft harmonics: a_k sin(2 pi k f_r t + phase_k), k = 1, 2, 3 (imbalance, misalignment),
  a_1 ~ U(0.2, 0.4), a_2 ~ U(0.05, 0.15), a_3 ~ U(0.02, 0.08), phases uniform;
- for a fault, an impulse train at the fault frequency: each strike rings the structure's
  resonance, A exp(-2 pi zeta f_n s) sin(2 pi f_n s) for s >= 0 after it, with f_n ~ U(2500,
  3500) Hz, zeta ~ U(0.04, 0.08), A ~ U(0.4, 1.2); the strikes are 1/f_fault apart with a
  1% Gaussian jitter of each interval (rolling elements slip), the first at a uniform phase;
- amplitude modulation of the strikes, 1 + m cos(2 pi f_m t + phase), m ~ U(0.3, 0.8): an
  inner-race defect turns with the shaft through the load zone (f_m = f_r), a ball with the
  cage (f_m = FTF); an outer-race defect sits still in it (no modulation);
- white Gaussian noise of std sigma ~ U(0.1, 0.3).
The shaft speed is uniform in 1,700..1,800 rpm per signal.

    signal   float32 LENGTH x 1 (arbitrary units of acceleration)
    label    ClassLabel: healthy, inner, outer, ball
    rpm      float32, the shaft speed
    fault_hz float32, the strike frequency (0 for healthy)

Signal i of a split is drawn from its own generator seeded by (SEED, split, i) and is of
class i mod 4: TRAIN and TEST signals per split, the classes balanced; preparing takes a few
seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

SAMPLE_RATE = 12_000
LENGTH = 2048
CLASSES = ("healthy", "inner", "outer", "ball")
SIGNALS = {"train": 2000, "test": 400}
SEED = 0
RPM = (1700.0, 1800.0)

# SKF 6205-2RS JEM (CWRU drive-end bearing), millimetres and radians.
BALLS, BALL_DIAMETER, PITCH_DIAMETER, CONTACT_ANGLE = 9, 7.94, 39.04, 0.0


def fault_orders() -> dict[str, float]:
    """Strike frequencies as multiples of the shaft frequency (the module docstring's formulas)."""
    ratio = BALL_DIAMETER / PITCH_DIAMETER * np.cos(CONTACT_ANGLE)
    return {"outer": BALLS / 2 * (1 - ratio), "inner": BALLS / 2 * (1 + ratio),
            "ball": PITCH_DIAMETER / (2 * BALL_DIAMETER) * (1 - ratio ** 2),
            "cage": (1 - ratio) / 2}


@dataclasses.dataclass(frozen=True)
class Params:
    """Everything one signal is made from."""

    kind: str                     # one of CLASSES
    rpm: float
    harmonics: tuple[float, ...]  # a_1, a_2, a_3
    phases: tuple[float, ...]
    noise: float                  # sigma
    resonance: float = 3000.0     # f_n, Hz
    damping: float = 0.06         # zeta
    strike: float = 0.0           # A
    jitter: float = 0.01          # std of each interval, as a fraction of it
    first: float = 0.0            # the first strike's phase, as a fraction of an interval
    modulation: float = 0.0       # m
    modulation_phase: float = 0.0

    @property
    def shaft_hz(self) -> float:
        return self.rpm / 60.0

    @property
    def fault_hz(self) -> float:
        return 0.0 if self.kind == "healthy" else fault_orders()[self.kind] * self.shaft_hz

    @property
    def modulation_hz(self) -> float:
        return {"inner": self.shaft_hz, "ball": fault_orders()["cage"] * self.shaft_hz}.get(
            self.kind, 0.0)


def draw_params(kind: str, rng: np.random.Generator) -> Params:
    """A random signal of class `kind`, drawn as the module docstring says."""
    if kind not in CLASSES:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(CLASSES)}")
    harmonics = (rng.uniform(0.2, 0.4), rng.uniform(0.05, 0.15), rng.uniform(0.02, 0.08))
    common = dict(kind=kind, rpm=rng.uniform(*RPM), harmonics=harmonics,
                  phases=tuple(rng.uniform(0, 2 * np.pi, 3)), noise=rng.uniform(0.1, 0.3))
    if kind == "healthy":
        return Params(**common)
    return Params(**common, resonance=rng.uniform(2500, 3500), damping=rng.uniform(0.04, 0.08),
                  strike=rng.uniform(0.4, 1.2), first=rng.uniform(),
                  modulation=0.0 if kind == "outer" else rng.uniform(0.3, 0.8),
                  modulation_phase=rng.uniform(0, 2 * np.pi))


def strike_times(p: Params, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Strike times in seconds, from one interval before 0 (its ringing reaches into the
    signal) to `duration`, each interval 1/fault_hz with its own jitter."""
    interval = 1.0 / p.fault_hz
    count = int(duration / interval) + 3
    gaps = interval * (1 + p.jitter * rng.standard_normal(count))
    return (p.first - 1) * interval + np.concatenate([[0.0], np.cumsum(gaps[:-1])])


def render(p: Params, length: int, rng: np.random.Generator,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The float32 signal of `p`; `rng` draws the jitter and the noise."""
    t = np.arange(length) / sample_rate
    x = sum(a * np.sin(2 * np.pi * (k + 1) * p.shaft_hz * t + phase)
            for k, (a, phase) in enumerate(zip(p.harmonics, p.phases)))
    if p.kind != "healthy":
        times = strike_times(p, length / sample_rate, rng)
        since = t[None, :] - times[:, None]  # time since each strike, < 0 before it
        s = np.maximum(since, 0.0)
        ringing = (np.exp(-2 * np.pi * p.damping * p.resonance * s)
                   * np.sin(2 * np.pi * p.resonance * s) * (since >= 0))
        gain = p.strike * (1 + p.modulation * np.cos(2 * np.pi * p.modulation_hz * times
                                                      + p.modulation_phase))
        x = x + np.sum(ringing * gain[:, None], axis=0)
    x = x + p.noise * rng.standard_normal(length)
    return x.astype(np.float32)


def signal(split: str, index: int) -> tuple[np.ndarray, Params]:
    """Signal `index` of `split` and its parameters: the same on every machine and call."""
    rng = np.random.default_rng([SEED, list(SIGNALS).index(split), index])
    p = draw_params(CLASSES[index % len(CLASSES)], rng)
    return render(p, LENGTH, rng), p


def examples(split: str):
    """(key, example) for every signal of `split`."""
    for i in range(SIGNALS[split]):
        x, p = signal(split, i)
        yield i, {"signal": x[:, None], "label": CLASSES.index(p.kind),
                  "rpm": np.float32(p.rpm), "fault_hz": np.float32(p.fault_hz)}


class Vibration(tfds.core.GeneratorBasedBuilder):
    """Synthetic bearing vibration: healthy, inner-race, outer-race and ball faults."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "2,000 / 400 signals of 2,048 samples at 12 kHz, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "signal": tfds.features.Tensor(shape=(LENGTH, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=list(CLASSES)),
                "rpm": tfds.features.Tensor(shape=(), dtype=np.float32),
                "fault_hz": tfds.features.Tensor(shape=(), dtype=np.float32),
            }),
            metadata=tfds.core.MetadataDict(sample_rate=SAMPLE_RATE),
            homepage="https://engineering.case.edu/bearingdatacenter",
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SIGNALS}

    def _generate_examples(self, split):
        yield from examples(split)


def reference_bits(split: str = "test", levels: int = 256) -> dict[str, float]:
    """Reference NLLs in bits per sample for a next-sample model of `split`'s signals, coded as
    tasks/next_sample.py codes them (peak-normalised, mu-law), sample 0 excluded:
    `histogram`, each code's frequency over the train split's codes (a model with no
    context); `oracle`, the probability of each code's bin under the true Gaussian noise around
    the signal's noise-free waveform, which knows even when each strike comes: a floor no
    causal model reaches."""
    from scipy.stats import norm

    from data import mu_law

    bounds, counts, oracle, coded = mu_law.edges(levels), np.ones(levels), [], []
    for name in dict.fromkeys(("train", split)):
        for i in range(SIGNALS[name]):
            rng = np.random.default_rng([SEED, list(SIGNALS).index(name), i])
            p = draw_params(CLASSES[i % len(CLASSES)], rng)
            state = rng.bit_generator.state
            noisy = render(p, LENGTH, rng)
            rng.bit_generator.state = state  # the same jitter, no noise
            clean = render(dataclasses.replace(p, noise=0.0), LENGTH, rng)[1:]
            peak = np.abs(noisy).max()
            codes = mu_law.encode(noisy / peak, levels)[1:]
            if name == "train":
                counts += np.bincount(codes, minlength=levels)
            if name != split:
                continue
            coded.append(codes)
            mean, std = clean / peak, p.noise / peak
            prob = (norm.cdf((bounds[codes + 1] - mean) / std)
                    - norm.cdf((bounds[codes] - mean) / std))
            oracle.append(-np.log2(np.maximum(prob, 1e-300)).mean())
    histogram = counts / counts.sum()
    return {"histogram": float(-np.log2(histogram[np.concatenate(coded)]).mean()),
            "oracle": float(np.mean(oracle))}
