"""Mu-law companding and quantisation (ITU-T G.711's curve; WaveNet sec. 2.2): a signal in
[-1, 1] to `levels` integer codes and back.

    f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu),   mu = levels - 1
    code = round((f(x) + 1) / 2 * mu)             in 0 .. mu
    decode(code) = sign(y) ((1 + mu)^|y| - 1) / mu,   y = 2 code / mu - 1

The curve spends its levels on small amplitudes, where most samples of audio and vibration
lie. `encode(decode(c)) == c` for every code; `decode(encode(x))` is within half a level of x
on the companded scale. NumPy or JAX arrays alike (the ops are those both share).
"""

from __future__ import annotations

import numpy as np

LEVELS = 256


def encode(x, levels: int = LEVELS, xp=np):
    """Codes (int32) of `x`, clipped to [-1, 1] first."""
    mu = levels - 1
    x = xp.clip(x, -1.0, 1.0)
    companded = xp.sign(x) * xp.log1p(mu * xp.abs(x)) / np.log1p(mu)
    return xp.round((companded + 1.0) / 2.0 * mu).astype(xp.int32)


def decode(codes, levels: int = LEVELS, xp=np):
    """The signal value (float32) at the centre of each code's level."""
    mu = levels - 1
    y = 2.0 * codes.astype(xp.float32) / mu - 1.0
    return (xp.sign(y) * xp.expm1(xp.abs(y) * np.log1p(mu)) / mu).astype(xp.float32)


def peak_normalised(signal: np.ndarray) -> np.ndarray:
    """`signal` divided by its largest magnitude (into [-1, 1]); a silent signal stays 0."""
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    return (signal / peak if peak > 0 else signal).astype(np.float32)


def edges(levels: int = LEVELS) -> np.ndarray:
    """The `levels + 1` boundaries on the signal scale between codes (the companded midpoints),
    -inf and inf outermost: code c holds [edges[c], edges[c + 1])."""
    mu = levels - 1
    y = (2 * np.arange(levels + 1) - 1) / mu - 1.0
    out = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
    out[0], out[-1] = -np.inf, np.inf
    return out
