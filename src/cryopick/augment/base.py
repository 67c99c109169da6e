"""What every transform shares: the transform type, option checks, argument checks and
the base of the transforms applied with a probability."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable

import numpy as np

from cryopick.errors import InputError

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], "tuple[np.ndarray, np.ndarray]"]

# Below this standard deviation a patch is treated as constant.
_TINY_STD = 1e-12


def _check_probability(name: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= float(p) <= 1.0:
        raise InputError(f"augmentation option {name}={p!r} must be a probability in [0, 1]")
    return float(p)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (
        math.isfinite(float(value)) and float(value) > 0.0
    ):
        raise InputError(f"augmentation option {name}={value!r} must be a finite number > 0")
    return float(value)


def _check_range(
    name: str, value: object, *, low: float | None = None, low_open: bool = False
) -> tuple[float, float]:
    """Validate a ``(lo, hi)`` pair with ``lo <= hi`` and, if given, ``lo >= low``
    (``lo > low`` when ``low_open``); ``hi`` must always exceed ``low``."""
    try:
        lo, hi = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(f"augmentation option {name}={value!r} must be a pair (low, high)") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
            raise InputError(f"augmentation option {name}={value!r} must hold two finite numbers")
    lo, hi = float(lo), float(hi)
    if lo > hi:
        raise InputError(f"augmentation option {name}={value!r} needs low <= high")
    if low is not None:
        too_low = lo <= low if low_open else lo < low
        if too_low or hi <= low:
            bound = f"> {low:g}" if low_open else f">= {low:g} (and high > {low:g})"
            raise InputError(f"augmentation option {name}={value!r} must be {bound}")
    return lo, hi


def _check_int_range(name: str, value: object, *, low: int) -> tuple[int, int]:
    try:
        lo, hi = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(f"augmentation option {name}={value!r} must be a pair (low, high)") from None
    if any(isinstance(v, bool) or not isinstance(v, Integral) for v in (lo, hi)):
        raise InputError(f"augmentation option {name}={value!r} must hold two integers")
    if not low <= lo <= hi:
        raise InputError(f"augmentation option {name}={value!r} needs {low} <= low <= high")
    return int(lo), int(hi)


def _prepare(image: np.ndarray, mask: np.ndarray, rng: object) -> tuple[np.ndarray, np.ndarray]:
    """Check the call arguments; return float32 C-contiguous image and mask."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    if image.ndim != 2:
        raise InputError(f"augmentation needs a 2-D image patch, got shape {image.shape}")
    if mask.shape != image.shape:
        raise InputError(
            f"augmentation needs a mask of the image's shape {image.shape}, got {mask.shape}"
        )
    return image, mask


def _intensity_unit(image: np.ndarray) -> float:
    """The patch's standard deviation, or 1.0 for a constant patch."""
    std = float(image.std(dtype=np.float64))
    return std if std > _TINY_STD else 1.0


def _fires(rng: np.random.Generator, p: float) -> bool:
    """One draw from ``rng``: True with probability ``p`` (never for 0, always for 1)."""
    return bool(rng.random() < p)


class _RandomTransform:
    """Base of the transforms applied with probability ``p``.

    Subclasses implement :meth:`_apply` on already checked float32 arrays.
    """

    def __init__(self, p: float) -> None:
        self.p = _check_probability("p", p)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = _prepare(image, mask, rng)
        if not _fires(rng, self.p):
            return image, mask
        image, mask = self._apply(image, mask, rng)
        return (
            np.ascontiguousarray(image, dtype=np.float32),
            np.ascontiguousarray(mask, dtype=np.float32),
        )

    def _apply(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"
