"""Training targets: particle coordinates -> disk masks, with an ignore value.

Mask values: 1 particle, 0 background, IGNORE (-1) excluded from the loss and metrics.
"""

from __future__ import annotations

import numpy as np

IGNORE = -1.0


def disk_mask(shape: tuple[int, int], xy: np.ndarray, radius: float, value: float = 1.0,
              out: np.ndarray | None = None) -> np.ndarray:
    """Paint filled disks of ``radius`` px at ``xy`` ((N,2), x = column) into a float32 mask.

    A pixel belongs to a disk when its centre is within ``radius`` of the particle centre.
    Only a (2r+1)^2 window per particle is touched, so this is O(N r^2).
    """
    mask = np.zeros(shape, np.float32) if out is None else out
    if len(xy) == 0:
        return mask
    r = int(np.ceil(radius))
    offs = np.arange(-r, r + 1)
    h, w = shape
    for x, y in np.asarray(xy, dtype=np.float64):
        cx, cy = int(round(x)), int(round(y))
        ys, xs = cy + offs, cx + offs
        ys, xs = ys[(ys >= 0) & (ys < h)], xs[(xs >= 0) & (xs < w)]
        if len(ys) == 0 or len(xs) == 0:
            continue
        inside = (xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2 <= radius**2
        window = mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        window[inside] = value
    return mask


def particle_mask(shape: tuple[int, int], xy: np.ndarray, radius: float, ignore_ring: float = 0.0,
                  split: float = 0.0) -> np.ndarray:
    """Disks of 1 on background 0; optionally an ignore ring (radius .. radius*(1+ring)) set to -1
    so the uncertain particle edge does not count as background, and overlapping disks split
    (:func:`split_touching`, ``split`` x ``radius`` wide)."""
    mask = np.zeros(shape, np.float32)
    if ignore_ring > 0:
        disk_mask(shape, xy, radius * (1 + ignore_ring), IGNORE, out=mask)
    disk_mask(shape, xy, radius, 1.0, out=mask)
    if split > 0:
        split_touching(mask, xy, radius, split * radius)
    return mask


def split_touching(mask: np.ndarray, xy: np.ndarray, radius: float, gap: float) -> np.ndarray:
    """Cut a background line between overlapping disks, in place: for two particles closer than
    two radii, a disk pixel whose distances to the two centres differ by less than ``gap`` px (a
    band ``gap`` wide on their perpendicular bisector) becomes 0, as the U-Net paper's borders
    keep touching cells apart.

    Crowded particles closer than two target radii otherwise paint one blob with one maximum,
    and the picker finds one of the two (CryoPPP 10947: a third of the particles have a
    neighbour within 1.2 particle radii).
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2 or gap <= 0:
        return mask
    h, w = mask.shape
    r = int(np.ceil(radius))
    for i, j in cKDTree(xy).query_pairs(2 * radius):
        (xi, yi), (xj, yj) = xy[i], xy[j]
        x0, x1 = max(int(np.floor(min(xi, xj))) - r, 0), min(int(np.ceil(max(xi, xj))) + r + 1, w)
        y0, y1 = max(int(np.floor(min(yi, yj))) - r, 0), min(int(np.ceil(max(yi, yj))) + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        xs, ys = np.arange(x0, x1)[None, :], np.arange(y0, y1)[:, None]
        di = np.hypot(xs - xi, ys - yi)
        dj = np.hypot(xs - xj, ys - yj)
        line = (np.minimum(di, dj) <= radius) & (np.abs(di - dj) < gap)
        window = mask[y0:y1, x0:x1]
        window[line & (window > 0)] = 0.0
    return mask


def pu_prior(masks: list[np.ndarray], particles_per_micrograph: float, radius: float) -> float:
    """Share of *unlabelled* pixels that belong to particles, for the PU loss.

    Expected particle area (``particles_per_micrograph`` disks of ``radius``) minus the
    labelled area, over the unlabelled area; pooled over ``masks`` (1 = labelled).
    """
    area = sum(m.size for m in masks)
    labelled = sum(float((m >= 0.5).sum()) for m in masks)
    expected = len(masks) * particles_per_micrograph * np.pi * radius**2
    prior = (expected - labelled) / max(area - labelled, 1.0)
    return float(np.clip(prior, 1e-3, 0.5))
