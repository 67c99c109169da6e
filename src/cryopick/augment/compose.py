"""Chaining transforms, and the standard training augmentation."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from cryopick.errors import InputError

from .base import Transform, _check_probability, _prepare
from .geometric import ElasticDeform, RandomRot90Flip, RandomZoom
from .intensity import ContrastGradient, GaussianBlur, GaussianNoise, IceContamination, Normalize


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

    ``domain=True`` (domain randomisation, for a model meant for data sets it never saw)
    adds :class:`RandomZoom` (``p``, 0.8-1.25x) after the elastic step and
    :class:`GaussianBlur` (``p / 2``, sigma 0.5-2 px) before the noise.
    """

    def __init__(self, p: float = 0.5, domain: bool = False) -> None:
        self.p = _check_probability("p", p)
        self.domain = bool(domain)
        zoom = [RandomZoom(p=self.p)] if self.domain else []
        blur = [GaussianBlur(p=self.p / 2.0)] if self.domain else []
        super().__init__(
            [
                RandomRot90Flip(p=self.p),
                ElasticDeform(p=self.p / 2.0),
                *zoom,
                *blur,
                GaussianNoise(p=self.p),
                IceContamination(p=0.4 * self.p),
                ContrastGradient(p=self.p),
            ]
        )

    def __repr__(self) -> str:
        return f"CryoEMAugmentation(p={self.p!r}" + (", domain=True)" if self.domain else ")")


def default_train_transform(augment: bool, domain: bool = False) -> Compose:
    """``Compose([CryoEMAugmentation(0.5, domain), Normalize()])``, or just ``Normalize()``."""
    if augment:
        return Compose([CryoEMAugmentation(0.5, domain), Normalize()])
    return Compose([Normalize()])
