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

Geometric transforms (:class:`RandomRot90Flip`, :class:`ElasticDeform`, :class:`RandomZoom`) move image and
mask together; the mask is never interpolated between labels, so ``-1`` stays exactly
``-1``.  Intensity transforms (:class:`GaussianNoise`, :class:`GaussianBlur`, :class:`ContrastGradient`,
:class:`IceContamination`, :class:`Normalize`) return the mask unchanged.

Intensity amounts are expressed in units of the patch's own standard deviation, so the
transforms behave the same whatever the micrograph's scale.  For a constant patch
(std 0) the unit is 1.0 instead.

Typical use::

    transform = default_train_transform(augment=True)
    image, mask = transform(image, mask, rng)

Modules: :mod:`.base` (checks, the random-transform base), :mod:`.geometric`,
:mod:`.intensity`, :mod:`.compose` (chaining, the standard augmentation) and
:mod:`.examples` (copies and a figure for the report); every public name is here.
"""

from .base import Transform
from .compose import Compose, CryoEMAugmentation, default_train_transform
from .examples import augmentation_examples, save_augmentation_examples
from .geometric import ElasticDeform, RandomRot90Flip, RandomZoom
from .intensity import ContrastGradient, GaussianBlur, GaussianNoise, IceContamination, Normalize

__all__ = [
    "Transform",
    "RandomRot90Flip",
    "ElasticDeform",
    "RandomZoom",
    "GaussianBlur",
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
