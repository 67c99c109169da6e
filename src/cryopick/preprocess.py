"""Preprocessing shared by training and picking: downsampling, normalisation, coordinates.

The same :func:`preprocess` runs at train and pick time (its settings travel in the
checkpoint). Downsampling by a factor f maps original pixel centres x to
``(x + 0.5) / f - 0.5`` (binning convention), and back with :func:`to_original`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.transform import downscale_local_mean, rescale

from .errors import InputError
from .registry import by_name, help_text

MAX_DIAMETER_PX = 40.0  # auto downsampling: the smallest integer factor that brings a particle to <= 40 px across


def auto_downsample(diameter_px: float, max_diameter: float = MAX_DIAMETER_PX) -> float:
    """The smallest integer factor after which a particle of ``diameter_px`` is at most
    ``max_diameter`` px across (so 20-40 px for particles larger than that).

    Chosen on validation micrographs (benchmarks/results/levers.md). With the current pick
    settings (peaks 0.5 r apart, smoothing 0.15 r, edge margin) 40 px beats 32: CryoPPP 10059
    (36 px particles) at factor 1 instead of 2, validation AP 0.715 -> 0.736, F1 0.756 -> 0.779;
    EMPIAR-10017 (108 px) at 3 instead of 4, 0.853 -> 0.879, F1 0.862 -> 0.880. 10947 (60 px)
    keeps 2 (at 3, 20 px, it was worse: 0.521 -> 0.500), the simulated sets (32 px) keep 1.
    """
    if not (diameter_px > 0):
        raise InputError(f"particle diameter must be positive, got {diameter_px}")
    return float(max(1, int(np.ceil(diameter_px / max_diameter - 1e-9))))


def downsample(image: np.ndarray, factor: float) -> np.ndarray:
    """Bin by an integer factor (mean of f x f blocks) or rescale with anti-aliasing otherwise."""
    if factor <= 0:
        raise InputError(f"downsampling factor must be positive, got {factor}")
    if factor == 1:
        return image.astype(np.float32, copy=False)
    if float(factor).is_integer():
        f = int(factor)
        h, w = (image.shape[0] // f) * f, (image.shape[1] // f) * f
        return downscale_local_mean(image[:h, :w], (f, f)).astype(np.float32)
    return rescale(image, 1.0 / factor, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _robust(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99])
    core = image[(image >= lo) & (image <= hi)]
    mu, sd = float(core.mean()), max(float(core.std()), 1e-6)
    return np.clip((image - mu) / sd, -6, 6).astype(np.float32)


def _zscore(image: np.ndarray) -> np.ndarray:
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def _unchanged(image: np.ndarray) -> np.ndarray:
    return image


@dataclass(frozen=True)
class Normalization:
    name: str
    fn: Callable[[np.ndarray], np.ndarray]  # float32 image -> float32 image
    help: str


#: The registry: every normalisation declared once. :func:`normalize`, the ``--normalize``
#: choices and help, and the values ``compare --vary normalize=...`` accepts derive from it.
NORMALIZATIONS: dict[str, Normalization] = by_name(
    Normalization("robust", _robust, "zero mean, unit std from the 1-99th percentiles, clipped to +-6 sigma"),
    Normalization("zscore", _zscore, "zero mean, unit std over the whole micrograph"),
    Normalization("none", _unchanged, "the pixel values as read"),
)
NORMALIZE_HELP = help_text(NORMALIZATIONS)


def normalize(image: np.ndarray, method: str = "robust") -> np.ndarray:
    """Zero mean, unit std. ``robust`` takes the statistics between the 1st and 99th
    percentiles and clips to +-6 sigma, so ice contamination, carbon and border
    artefacts do not set the scale."""
    image = image.astype(np.float32, copy=False)
    if method not in NORMALIZATIONS:
        raise InputError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATIONS)}")
    return NORMALIZATIONS[method].fn(image)


def preprocess(image: np.ndarray, factor: float, method: str) -> np.ndarray:
    return normalize(downsample(image, factor), method)


def to_downsampled(xy: np.ndarray, factor: float) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) / factor - 0.5


def to_original(xy: np.ndarray, factor: float) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) * factor - 0.5
