"""Smooth random fields: the texture of carbon and contaminants, the slow ice-thickness field."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """White noise low-passed by a Gaussian of std ``sigma_px`` (px), normalised to std 1."""
    f = sfft.rfft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    f *= np.exp(-2.0 * math.pi**2 * sigma_px**2 * (kx * kx + ky * ky))
    out = sfft.irfft2(f, s=shape)
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def _ice_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """The slow ice-thickness field: smooth noise plus a random linear ramp, mean 0, std 1."""
    field_ = _smooth_noise(rng, (size, size), size / 6.0)
    g = rng.normal(size=2)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    field_ = field_ + rng.uniform(0.0, 1.5) * (g[0] * xx + g[1] * yy) / 0.29
    return (field_ - field_.mean()) / (field_.std() + 1e-12)
