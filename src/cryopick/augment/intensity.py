"""Intensity transforms: they change the image only and return the mask unchanged."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.special import expit

from .base import (
    _check_int_range,
    _check_positive,
    _check_range,
    _intensity_unit,
    _prepare,
    _RandomTransform,
)


class GaussianNoise(_RandomTransform):
    """Add white Gaussian noise to the image; the mask is untouched.

    The noise standard deviation is drawn uniformly from ``std_range`` and is relative
    to the patch's standard deviation.
    """

    def __init__(self, p: float = 0.5, std_range: tuple[float, float] = (0.05, 0.3)) -> None:
        super().__init__(p)
        self.std_range = _check_range("std_range", std_range, low=0.0)

    def _apply(self, image, mask, rng):
        std = rng.uniform(*self.std_range) * _intensity_unit(image)
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        return image + np.float32(std) * noise, mask


class GaussianBlur(_RandomTransform):
    """Low-pass the image with a Gaussian of ``sigma`` pixels drawn from ``sigma_range``.

    Denoised or filtered micrographs (Topaz-Denoise, JANNI, a cryoSPARC low-pass) look
    like this; a general model trained on raw sums alone meets them as a new domain.
    The mask is untouched.
    """

    def __init__(self, p: float = 0.5, sigma_range: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__(p)
        self.sigma_range = _check_range("sigma_range", sigma_range, low=0.0, low_open=True)

    def _apply(self, image, mask, rng):
        return ndimage.gaussian_filter(image, rng.uniform(*self.sigma_range), mode="reflect"), mask


class ContrastGradient(_RandomTransform):
    """Random gain, brightness offset and linear intensity ramp (ice-thickness variation).

    ``image -> mean + gain * (image - mean) + offset + ramp`` where

    * ``gain`` is drawn from ``gain_range``,
    * ``offset`` from ``brightness_range`` (in patch std units),
    * ``ramp`` is linear along a random direction, reaching ``+-amplitude`` at the
      patch's extreme corners, with ``amplitude`` drawn from ``gradient_range``
      (in patch std units).

    The mask is untouched.
    """

    def __init__(
        self,
        p: float = 0.5,
        gain_range: tuple[float, float] = (0.8, 1.25),
        brightness_range: tuple[float, float] = (-0.3, 0.3),
        gradient_range: tuple[float, float] = (0.05, 0.5),
    ) -> None:
        super().__init__(p)
        self.gain_range = _check_range("gain_range", gain_range, low=0.0, low_open=True)
        self.brightness_range = _check_range("brightness_range", brightness_range)
        self.gradient_range = _check_range("gradient_range", gradient_range, low=0.0)

    def _apply(self, image, mask, rng):
        unit = _intensity_unit(image)
        mean = float(image.mean(dtype=np.float64))
        gain = rng.uniform(*self.gain_range)
        offset = rng.uniform(*self.brightness_range) * unit
        amplitude = rng.uniform(*self.gradient_range) * unit
        angle = rng.uniform(0.0, 2.0 * math.pi)

        h, w = image.shape
        rows = (np.arange(h) - (h - 1) / 2.0) / max((h - 1) / 2.0, 1.0)
        cols = (np.arange(w) - (w - 1) / 2.0) / max((w - 1) / 2.0, 1.0)
        cos, sin = math.cos(angle), math.sin(angle)
        # |cos| + |sin| >= 1 is the ramp's value at the farthest corner: scale it to 1.
        ramp = (sin * rows[:, None] + cos * cols[None, :]) / (abs(cos) + abs(sin))

        out = (mean + offset) + gain * (image.astype(np.float64) - mean) + amplitude * ramp
        return out.astype(np.float32), mask


class IceContamination(_RandomTransform):
    """Darken the image with 1-2 irregular, soft-edged blobs (ice contamination).

    Each blob is a disc of radius ``radius_range`` (fraction of the patch's short side)
    whose outline is perturbed by random low-order harmonics, with a logistic edge of
    ``edge_width`` pixels; it lowers the image by ``strength_range`` patch std units.

    Mask policy: contamination is not a particle, so the mask is returned unchanged.
    Background under a blob stays ``0`` (the network learns that blobs are not
    particles), ignore stays ``-1``, and a positive label under a blob is kept rather
    than erased.  To keep such hidden-particle labels rare, each blob centre is drawn
    from the background pixels (``mask == 0``) when there are any.
    """

    _HARMONICS = np.arange(2, 6)  # outline wobble: elongation, triangularity, ...

    def __init__(
        self,
        p: float = 0.2,
        n_blobs: tuple[int, int] = (1, 2),
        radius_range: tuple[float, float] = (0.08, 0.25),
        strength_range: tuple[float, float] = (2.0, 5.0),
        edge_width: float = 2.0,
    ) -> None:
        super().__init__(p)
        self.n_blobs = _check_int_range("n_blobs", n_blobs, low=1)
        self.radius_range = _check_range("radius_range", radius_range, low=0.0, low_open=True)
        self.strength_range = _check_range("strength_range", strength_range, low=0.0, low_open=True)
        self.edge_width = _check_positive("edge_width", edge_width)

    def _blob(self, shape, mask, rng) -> np.ndarray:
        h, w = shape
        background = np.flatnonzero(mask == 0)
        if background.size:
            centre = int(background[rng.integers(background.size)])
        else:
            centre = int(rng.integers(h * w))
        cy, cx = divmod(centre, w)
        radius = rng.uniform(*self.radius_range) * min(h, w)
        # Wobble weakening with order: lumpy rather than star-shaped.
        amplitudes = rng.uniform(0.0, 0.25, size=self._HARMONICS.size) / (self._HARMONICS - 1)
        phases = rng.uniform(0.0, 2.0 * math.pi, size=self._HARMONICS.size)

        dy = np.arange(h, dtype=np.float64)[:, None] - cy
        dx = np.arange(w, dtype=np.float64)[None, :] - cx
        theta = np.arctan2(dy, dx)
        k = self._HARMONICS[:, None, None]
        wobble = (amplitudes[:, None, None] * np.cos(k * theta + phases[:, None, None])).sum(axis=0)
        outline = radius * (1.0 + wobble)  # >= 0.47 * radius: sum(amplitudes) < 0.53
        return expit((outline - np.hypot(dy, dx)) / self.edge_width)

    def _apply(self, image, mask, rng):
        unit = _intensity_unit(image)
        n = int(rng.integers(self.n_blobs[0], self.n_blobs[1] + 1))
        darkening = np.zeros(image.shape, dtype=np.float64)
        for _ in range(n):
            strength = rng.uniform(*self.strength_range) * unit
            darkening = np.maximum(darkening, strength * self._blob(image.shape, mask, rng))
        return (image - darkening).astype(np.float32), mask


class Normalize:
    """Scale the image to zero mean and unit standard deviation; mask untouched.

    A patch whose std is below ``eps`` becomes all zeros (no division by ~0, no NaN).
    Uses no randomness.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = _check_positive("eps", eps)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = _prepare(image, mask, rng)
        values = image.astype(np.float64)
        mean = values.mean()
        std = values.std()
        values -= mean
        if std >= self.eps:
            values /= std
        else:
            values[...] = 0.0
        return values.astype(np.float32), mask

    def __repr__(self) -> str:
        return f"Normalize(eps={self.eps!r})"
