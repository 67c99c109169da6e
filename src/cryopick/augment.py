"""Data augmentation for training patches (numpy/scipy only, safe in DataLoader workers).

Every transform is a callable ``t(image, mask, rng) -> (image, mask)`` where

* ``image`` is a 2-D float patch of a micrograph (H, W),
* ``mask`` is its 2-D target of the same shape: ``1`` particle, ``0`` background,
  ``-1`` ignore; soft targets in ``[0, 1]`` are allowed, ``-1`` always means ignore,
* ``rng`` is a :class:`numpy.random.Generator` and the **only** source of randomness,
  so the same generator state always gives the same output.

Outputs are float32, C-contiguous and of the input shape.  Transforms never modify
their inputs in place; a transform that decides not to act may return its (float32,
C-contiguous) inputs unchanged.

Geometric transforms (:class:`RandomRot90Flip`, :class:`ElasticDeform`) move image and
mask together; the mask is never interpolated between labels, so ``-1`` stays exactly
``-1``.  Intensity transforms (:class:`GaussianNoise`, :class:`ContrastGradient`,
:class:`IceContamination`, :class:`Normalize`) return the mask unchanged.

Intensity amounts are expressed in units of the patch's own standard deviation, so the
transforms behave the same whatever the micrograph's scale.  For a constant patch
(std 0) the unit is 1.0 instead.

Typical use::

    transform = default_train_transform(augment=True)
    image, mask = transform(image, mask, rng)
"""

from __future__ import annotations

import contextlib
import math
import os
from numbers import Integral, Real
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import ndimage
from scipy.special import expit

from cryopick.errors import InputError, OutputError

__all__ = [
    "Transform",
    "RandomRot90Flip",
    "ElasticDeform",
    "GaussianNoise",
    "ContrastGradient",
    "IceContamination",
    "Normalize",
    "Compose",
    "CryoEMAugmentation",
    "default_train_transform",
    "augmentation_examples",
    "save_augmentation_examples",
]

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], "tuple[np.ndarray, np.ndarray]"]

# Below this standard deviation a patch is treated as constant.
_TINY_STD = 1e-12


# --------------------------------------------------------------------------- helpers


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


# ------------------------------------------------------------------ geometric transforms


class RandomRot90Flip(_RandomTransform):
    """Rotate by a multiple of 90 degrees and/or flip; image and mask move together.

    When it fires it applies one of the symmetries of the square other than the identity,
    chosen uniformly (7 choices: 3 rotations, 4 flips/transpositions).  A non-square patch
    keeps its shape, so only 180-degree rotation and horizontal/vertical flips are used.
    """

    # (number of 90-degree rotations, flip left-right afterwards)
    _SQUARE_OPS = tuple((k, flip) for flip in (False, True) for k in range(4))[1:]
    _RECT_OPS = ((2, False), (0, True), (2, True))

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def _apply(self, image, mask, rng):
        ops = self._SQUARE_OPS if image.shape[0] == image.shape[1] else self._RECT_OPS
        k, flip = ops[int(rng.integers(len(ops)))]

        def move(a: np.ndarray) -> np.ndarray:
            a = np.rot90(a, k)
            return a[:, ::-1] if flip else a

        return move(image), move(mask)


class ElasticDeform(_RandomTransform):
    """Smooth, small elastic deformation.

    A random displacement field (uniform noise, Gaussian-filtered with ``sigma`` pixels)
    is scaled so that the largest displacement is ``alpha`` pixels.  The image is
    resampled with linear interpolation, the mask with nearest neighbour so it only holds
    values it held before (``-1`` stays exactly ``-1``).  Borders are reflected.
    Keep ``alpha`` at a few pixels, well below the particle radius, so particles stay
    where their labels are.
    """

    def __init__(self, p: float = 0.5, alpha: float = 2.0, sigma: float = 6.0) -> None:
        super().__init__(p)
        self.alpha = _check_positive("alpha", alpha)
        self.sigma = _check_positive("sigma", sigma)

    def displacement(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Random field of shape ``(2, H, W)`` (row, column shifts) with max norm ``alpha``."""
        field = rng.uniform(-1.0, 1.0, size=(2, *shape))
        for axis in range(2):
            field[axis] = ndimage.gaussian_filter(field[axis], self.sigma, mode="reflect")
        peak = float(np.sqrt((field**2).sum(axis=0)).max())
        if peak > 0.0:
            field *= self.alpha / peak
        return field

    def _apply(self, image, mask, rng):
        coords = np.indices(image.shape, dtype=np.float64) + self.displacement(image.shape, rng)
        image = ndimage.map_coordinates(image, coords, order=1, mode="reflect", output=np.float32)
        mask = ndimage.map_coordinates(mask, coords, order=0, mode="reflect", output=np.float32)
        return image, mask


# ------------------------------------------------------------------ intensity transforms


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


# ------------------------------------------------------------------------ composition


class Compose:
    """Apply transforms in order, all drawing from the same ``rng``."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        try:
            self.transforms = list(transforms)
        except TypeError:
            raise InputError(f"Compose needs a list of transforms, got {transforms!r}") from None
        for t in self.transforms:
            if not callable(t):
                raise InputError(f"Compose got {t!r}, which is not a transform (not callable)")

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = _prepare(image, mask, rng)
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image, mask

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"{type(self).__name__}([{inner}])"


class CryoEMAugmentation(Compose):
    """The standard training augmentation, each step with its own probability.

    With overall strength ``p`` (default 0.5) the steps and their probabilities are,
    in the order applied:

    ============================  ============  ===================================
    step                          probability   at p = 0.5
    ============================  ============  ===================================
    :class:`RandomRot90Flip`      ``p``         0.5
    :class:`ElasticDeform`        ``p / 2``     0.25 (resampling blurs slightly)
    :class:`GaussianNoise`        ``p``         0.5
    :class:`IceContamination`     ``0.4 * p``   0.2  (rare artefact)
    :class:`ContrastGradient`     ``p``         0.5
    ============================  ============  ===================================

    Geometry comes first, so intensity changes are not resampled; noise is scaled to the
    patch before contamination inflates its std; gain/gradient act on the whole scene.
    ``p = 0`` is the identity and ``p = 1`` applies every step.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability("p", p)
        super().__init__(
            [
                RandomRot90Flip(p=self.p),
                ElasticDeform(p=self.p / 2.0),
                GaussianNoise(p=self.p),
                IceContamination(p=0.4 * self.p),
                ContrastGradient(p=self.p),
            ]
        )

    def __repr__(self) -> str:
        return f"CryoEMAugmentation(p={self.p!r})"


def default_train_transform(augment: bool) -> Compose:
    """``Compose([CryoEMAugmentation(0.5), Normalize()])``, or just ``Normalize()``."""
    if augment:
        return Compose([CryoEMAugmentation(0.5), Normalize()])
    return Compose([Normalize()])


# --------------------------------------------------------------------------- examples


def augmentation_examples(
    image: np.ndarray,
    mask: np.ndarray,
    n: int = 6,
    seed: int = 0,
    transform: Transform | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` augmented copies of one patch (for the report), reproducible from ``seed``.

    ``transform`` defaults to ``CryoEMAugmentation(0.5)`` (no normalisation, so changes
    of brightness stay visible); all copies draw from one generator seeded with ``seed``.
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise InputError(f"augmentation_examples needs n >= 1 examples, got {n!r}")
    transform = CryoEMAugmentation(0.5) if transform is None else transform
    rng = np.random.default_rng(seed)
    image, mask = _prepare(image, mask, rng)
    return [transform(image, mask, rng) for _ in range(int(n))]


def save_augmentation_examples(
    image: np.ndarray,
    mask: np.ndarray,
    path: str | os.PathLike[str],
    n: int = 6,
    seed: int = 0,
    transform: Transform | None = None,
) -> Path:
    """Draw the original patch and ``n`` augmented copies (images above, masks below).

    Written atomically: rendered to a temporary file in the target folder, then renamed
    over ``path``.  The format follows the suffix (``.png`` when there is none).
    Masks are shown with ignore (``-1``) pixels in grey.  Returns the path written.
    """
    # Lazy: only the report needs matplotlib.  Figure() renders with Agg, no pyplot state.
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    examples = [_prepare(image, mask, np.random.default_rng(0))]
    examples += augmentation_examples(image, mask, n=n, seed=seed, transform=transform)

    cols = len(examples)
    fig = Figure(figsize=(1.8 * cols, 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    mask_cmap = colormaps["viridis"].with_extremes(bad="0.6")
    for col, (img, msk) in enumerate(examples):
        axes[0, col].imshow(img, cmap="gray")
        axes[1, col].imshow(np.ma.masked_equal(msk, -1.0), cmap=mask_cmap, vmin=0.0, vmax=1.0)
        axes[0, col].set_title("original" if col == 0 else f"augmented {col}", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("mask (grey: ignore)", fontsize=8)

    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    # A unique name beside the target, opened exclusively; ``open`` honours the umask.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:
            fig.savefig(handle, format=fmt)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, ValueError)):
            raise OutputError(f"{target}: cannot write augmentation examples ({err})") from err
        raise
    return target
