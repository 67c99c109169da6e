"""Mask-image labels (e.g. CryoPPP's PNG masks) -> particle centres.

CryoPPP ships each micrograph's labels as a mask of filled disks, often at a lower
resolution than the micrograph (256x256 for 1024x1024 images) and with anti-aliased
edges. In crowded areas the disks touch and merge into blobs, so connected components
are not particles. All disks have about one radius ``R``, so a particle centre is a
point whose distance to the background is about ``R``: the maxima of the Euclidean
distance transform (EDT). Between two overlapping disks the EDT dips (the waist of the
union is narrower than a disk), so merged disks give one maximum each.

:func:`centres_from_mask` returns those maxima, at least ``min_separation x R`` apart
and with EDT >= ``min_depth x R`` (so slivers and partial edges are not particles),
in the micrograph's pixel convention (x = column, pixel-centre origin). Training,
``evaluate`` and the benchmark all read mask labels through :func:`read_mask_labels`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError
from .io import Particles, read_micrograph
from .io.micrographs import SUFFIXES as MIC_SUFFIXES

FIT = 0.7  # a centre's disk lies >= 70 % inside the mask (drawn disks vary by ~10 % in radius)
MIN_GAIN = 0.35  # each further disk must cover >= 35 % mask pixels no chosen disk covers
EDGE_PART = 0.45  # a particle cut by the micrograph's edge counts while about half its disk is inside
WORK_RADIUS = 8.0  # masks are upsampled so that a disk is ~8 px in radius (sub-pixel centres)


def binarize(mask: np.ndarray) -> np.ndarray:
    """``> half the maximum`` (masks may be 0/1, 0/255 or anti-aliased)."""
    mask = np.asarray(mask, dtype=np.float32)
    peak = float(mask.max()) if mask.size else 0.0
    return mask > 0.5 * peak if peak > 0 else np.zeros(mask.shape, bool)


def component_areas(binary: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(binary)
    areas = np.bincount(lab.ravel())[1:].astype(float) if n else np.zeros(0)
    return areas[areas >= 4]


def estimate_radius(areas: np.ndarray) -> float | None:
    """Disk radius (mask px) from component areas (pool several masks for a steady value):
    the median equivalent radius of components at most 1.4x the 10th-percentile area (single disks)."""
    if not len(areas):
        return None
    single = areas[areas <= 1.4 * np.percentile(areas, 10)]
    return float(np.sqrt(np.median(single) / np.pi))


def _disk(r: float) -> np.ndarray:
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    return (xx**2 + yy**2 <= r * r).astype(np.float32)


def _greedy_cover(binary: np.ndarray, r: float, fit: float, min_gain: float) -> np.ndarray:
    """Disks of radius ``r`` that fit inside ``binary``, chosen greedily by how many still
    uncovered mask pixels they add (lazy greedy: gains only shrink). Returns (N, 2) x, y.

    Near the image's edge only the part of a disk inside the image is compared with the
    mask, so labelled particles cut by the edge (half a disk or more inside) are kept."""
    import heapq

    from scipy.signal import fftconvolve

    disk = _disk(r)
    n, area = disk.shape[0] // 2, float(disk.sum())
    inside = fftconvolve(binary.astype(np.float32), disk, mode="same")
    # a disk cut by the micrograph's edge is judged on its part inside the image
    present = fftconvolve(np.ones(binary.shape, np.float32), disk, mode="same")
    ys, xs = np.nonzero((inside >= fit * present) & (present >= EDGE_PART * area))
    uncovered = np.pad(binary, n).astype(np.float32)  # padded so every window is whole
    heap = [(-inside[y, x], -inside[y, x], int(y), int(x)) for y, x in zip(ys, xs)]
    heapq.heapify(heap)
    chosen = []
    while heap:
        _, fit_key, y, x = heapq.heappop(heap)
        window = uncovered[y : y + 2 * n + 1, x : x + 2 * n + 1]
        gain = float((window * disk).sum())
        if gain < min_gain * present[y, x]:
            continue
        if heap and gain < -heap[0][0] - 1e-6:  # stale: reinsert with its current gain
            heapq.heappush(heap, (-gain, fit_key, y, x))
            continue
        chosen.append((x, y))
        window *= 1 - disk
    return np.asarray(chosen, dtype=np.float64).reshape(-1, 2)


def centres_from_mask(mask: np.ndarray, radius: float | None = None, scale: float = 1.0,
                      fit: float = FIT, min_gain: float = MIN_GAIN) -> tuple[np.ndarray, float]:
    """Particle centres of a disk mask: ``(xy (N, 2) in output px, radius in output px)``.

    ``radius`` is the disk radius in output px (``None``: estimated from the mask);
    ``scale`` maps mask px to output px (4 for a 256x256 mask of a 1024x1024 micrograph).
    Touching and overlapping disks are split: disks that fit inside the mask are chosen
    greedily by the uncovered mask area they add (a set cover), so a blob of k merged
    disks gives about k centres. The mask is upsampled (linear, then thresholded) so a
    disk is ~8 px in radius and centres are placed to a fraction of a mask pixel.
    """
    binary = binarize(mask)
    r_mask = radius / scale if radius is not None else estimate_radius(component_areas(binary))
    if r_mask is None or r_mask <= 0 or not binary.any():
        return np.zeros((0, 2)), float(radius or 0.0)
    up = max(1, int(round(WORK_RADIUS / r_mask)))
    if up > 1:
        from skimage.transform import resize

        smooth = resize(np.asarray(mask, np.float32) / max(float(np.max(mask)), 1e-12),
                        (mask.shape[0] * up, mask.shape[1] * up), order=1, mode="edge", anti_aliasing=False)
        binary = smooth > 0.5
    xy = _greedy_cover(binary, r_mask * up, fit, min_gain)
    xy = (xy + 0.5) / up - 0.5  # work px -> mask px (pixel-centre convention)
    return (xy + 0.5) * scale - 0.5, float(r_mask * scale)


def is_mask_dir(path: Path) -> bool:
    """A directory of images (not coordinate files): mask labels."""
    return path.is_dir() and any(p.suffix.lower() in MIC_SUFFIXES for p in path.iterdir())


def find_mask(mask_dir: Path, stem: str) -> Path | None:
    candidates = sorted(p for p in mask_dir.iterdir() if p.stem == stem and p.suffix.lower() in MIC_SUFFIXES)
    return candidates[0] if candidates else None


def read_mask(path: Path) -> np.ndarray:
    return read_micrograph(path, allow_constant=True).image


def particles_of_mask(mask: np.ndarray, image_shape: tuple[int, int], radius: float | None = None,
                      source: str = "mask", fit: float = FIT) -> Particles:
    """The particles of one mask laid over a micrograph of ``image_shape`` (h, w); ``radius`` in micrograph px."""
    sy, sx = image_shape[0] / mask.shape[0], image_shape[1] / mask.shape[1]
    if abs(sy - sx) > 1e-6 * max(sy, sx):
        raise InputError(f"{source}: mask {mask.shape[1]}x{mask.shape[0]} px does not have the aspect ratio of its "
                         f"micrograph ({image_shape[1]}x{image_shape[0]} px); make masks of the micrograph's shape")
    xy, r = centres_from_mask(mask, radius, scale=sx, fit=fit)
    return Particles(xy, None, 2 * r if r > 0 else None)


def read_mask_labels(mask_dir: Path, shapes: dict[str, tuple[int, int]], radius: float | None = None) -> dict[str, Particles]:
    """Particles for every micrograph stem in ``shapes`` (stem -> (h, w)) that has a mask in ``mask_dir``.

    ``radius`` (micrograph px) ``None``: estimated once from all the masks' components together.
    """
    paths = {stem: find_mask(mask_dir, stem) for stem in shapes}
    paths = {stem: p for stem, p in paths.items() if p is not None}
    masks = {stem: read_mask(p) for stem, p in paths.items()}
    if radius is None and masks:
        radius = mask_radius({stem: (m, shapes[stem]) for stem, m in masks.items()})
    return {stem: particles_of_mask(masks[stem], shapes[stem], radius, str(p)) for stem, p in paths.items()}


def mask_radius(masks: dict[str, tuple[np.ndarray, tuple[int, int]]]) -> float | None:
    """Disk radius in micrograph px from ``stem -> (mask, micrograph shape)``, all masks pooled."""
    areas = [component_areas(binarize(m)) * (shape[1] / m.shape[1]) ** 2 for m, shape in masks.values()]
    return estimate_radius(np.concatenate(areas)) if areas else None
