"""Geometric transforms: image and mask move together; the mask is never interpolated."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import _check_positive, _check_range, _RandomTransform


def _resample(image: np.ndarray, mask: np.ndarray, coords: np.ndarray, mode: str):
    """Image and mask at ``coords`` (2, H, W): the image linearly, the mask by nearest neighbour."""
    return (ndimage.map_coordinates(image, coords, order=1, mode=mode, output=np.float32),
            ndimage.map_coordinates(mask, coords, order=0, mode=mode, output=np.float32))


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
        return _resample(image, mask, coords, "reflect")


class RandomZoom(_RandomTransform):
    """Zoom about the patch centre by a factor drawn log-uniformly from ``scale_range``.

    Particles grow (factor > 1) or shrink with their target disks, so a model learns
    particles a little larger or smaller than the size it is given; the image is
    resampled linearly, the mask by nearest neighbour (``-1`` stays ``-1``), and the
    borders are reflected, image and mask alike.
    """

    def __init__(self, p: float = 0.5, scale_range: tuple[float, float] = (0.8, 1.25)) -> None:
        super().__init__(p)
        self.scale_range = _check_range("scale_range", scale_range, low=0.0, low_open=True)

    def _apply(self, image, mask, rng):
        lo, hi = np.log(self.scale_range)
        scale = float(np.exp(rng.uniform(lo, hi)))
        centre = (np.array(image.shape, dtype=np.float64) - 1.0) / 2.0
        coords = (np.indices(image.shape, dtype=np.float64) - centre[:, None, None]) / scale \
            + centre[:, None, None]
        return _resample(image, mask, coords, "mirror")
