"""How visible the particles of a simulated micrograph are to a band-pass blob picker."""

from __future__ import annotations

import numpy as np

from .config import SimulatedMicrograph
from .particles import _disk_mask


def particle_visibility(
    sim: SimulatedMicrograph,
    diameter: float,
    lowpass_sigma: float | None = None,
    highpass_sigma: float | None = None,
) -> dict[str, float]:
    """How visible the particles of ``sim`` are after a Gaussian band-pass.

    The image is low-passed with a Gaussian of std ``lowpass_sigma`` px (default a
    quarter of the diameter, i.e. half the particle radius; 0 = no low-pass) minus a
    Gaussian of std ``highpass_sigma`` (default 2 diameters; 0 = no high-pass) which
    removes the slow ice background, as a difference-of-Gaussians blob picker would.
    The values at the particle centres are compared to background pixels (farther than
    one diameter from any particle, off carbon and contaminants, half a diameter from the
    border).  Returns ``cnr`` = (background mean - particle mean) / background std
    (positive: particles darker) and ``auc`` = the probability that a particle centre is
    darker than a random background pixel (0.5: invisible, 1: separable by a threshold).
    NaN when undefined (no particle or no background).
    """
    from scipy.ndimage import gaussian_filter

    img = np.asarray(sim.image, dtype=np.float64)
    size_y, size_x = img.shape
    s_lo = diameter / 4 if lowpass_sigma is None else lowpass_sigma
    s_hi = 2 * diameter if highpass_sigma is None else highpass_sigma
    lp = gaussian_filter(img, s_lo) if s_lo > 0 else img
    if s_hi > 0:
        lp = lp - gaussian_filter(img, s_hi)
    if len(sim.coords) == 0:
        return {"cnr": float("nan"), "auc": float("nan")}
    ij = np.round(sim.coords[:, ::-1]).astype(int)
    vp = lp[ij[:, 0], ij[:, 1]]
    bg = ~_disk_mask(max(size_y, size_x), sim.coords, diameter)[:size_y, :size_x]
    yy, xx = np.mgrid[0:size_y, 0:size_x]
    for (cx, cy), r in zip(sim.contaminants, sim.meta.get("contaminant_radii", [])):
        bg &= (xx - cx) ** 2 + (yy - cy) ** 2 > (1.5 * r + diameter / 2) ** 2
    carbon = sim.meta.get("carbon")
    if carbon is not None:
        c = carbon["centre_xy"]
        bg &= np.hypot(xx - c[0], yy - c[1]) < carbon["radius"] - diameter / 2
    b = int(diameter // 2)
    bg[:b], bg[-b:], bg[:, :b], bg[:, -b:] = False, False, False, False
    vb = lp[bg]
    if vb.size < 2:
        return {"cnr": float("nan"), "auc": float("nan")}
    cnr = (vb.mean() - vp.mean()) / vb.std()
    vb_sorted = np.sort(vb)
    auc = np.mean(1.0 - np.searchsorted(vb_sorted, vp, side="right") / vb.size)
    return {"cnr": float(cnr), "auc": float(auc)}
