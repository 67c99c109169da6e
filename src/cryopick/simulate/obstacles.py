"""What a particle may not sit on: the carbon film at a hole edge, and contaminants."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SimulationConfig
from .noise import _smooth_noise


@dataclass
class _Obstacles:
    """The carbon region and the contaminants of one micrograph (image pixel coordinates)."""

    carbon: dict | None  # None, or the hole circle: carbon is where |p - centre_xy| > radius
    xy: np.ndarray  # (C, 2) contaminant centres
    radii: np.ndarray  # (C,) contaminant radii, px
    keepout: np.ndarray  # (C,) no particle centre closer than this to a contaminant centre

    @property
    def present(self) -> bool:
        """Is there anything besides particles (carbon or a contaminant)?"""
        return bool(len(self.xy)) or self.carbon is not None

    def allowed(self, p: np.ndarray, r_p: float) -> np.ndarray:
        """(N,) bool: may a particle centre lie at each of the (N, 2) points?"""
        keep = np.ones(len(p), dtype=bool)
        if len(self.xy):
            d = np.linalg.norm(p[:, None, :] - self.xy[None, :, :], axis=-1)
            keep &= (d >= self.keepout[None, :]).all(1)
        if self.carbon is not None:
            keep &= _carbon_dist(self.carbon, p) <= -r_p
        return keep


def _carbon_dist(carbon: dict, p: np.ndarray) -> np.ndarray:
    """Signed distance (px) of (..., 2) points to the carbon edge, > 0 on carbon."""
    c = np.asarray(carbon["centre_xy"])
    return np.linalg.norm(p - c, axis=-1) - carbon["radius"]


def _draw_obstacles(cfg: SimulationConfig, rng: np.random.Generator, r_p: float) -> _Obstacles:
    """The carbon region (when ``cfg.carbon_edge``), then ``cfg.contaminants`` contaminant sites.

    Carbon lies outside a large circle (the hole edge), on a random side; contaminants may
    lie anywhere and overlap each other and the border.
    """
    size = int(cfg.size)
    carbon = None
    if cfg.carbon_edge:
        ang = rng.uniform(0.0, 2 * math.pi)
        u = np.array([math.cos(ang), math.sin(ang)])  # from the image centre to the carbon
        frac = rng.uniform(0.15, 0.35)  # roughly the share of the image on carbon
        hole_r = size * rng.uniform(1.5, 3.0)
        edge_pt = np.array([(size - 1) / 2] * 2) + u * size * (0.5 - frac)
        carbon = {"centre_xy": (edge_pt - u * hole_r).tolist(), "radius": float(hole_r)}
    n_cont = int(cfg.contaminants)
    cont_xy = rng.uniform(0.0, size - 1, size=(n_cont, 2))
    cont_r = r_p * rng.uniform(1.5, 4.0, size=n_cont)
    cont_keepout = cont_r * 1.5 + r_p + 2.0  # outline can reach 1.48 radius
    return _Obstacles(carbon, cont_xy, cont_r, cont_keepout)


def _obstacle_density(
    rng: np.random.Generator, obs: _Obstacles, full: int, off: int, pad: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Projected density of the contaminants and the carbon on the ``full``-px canvas.

    Returns the density and the soft carbon mask (None without carbon).  Image pixel
    (0, 0) is canvas pixel (off, off); the density tapers to 0 across the ``pad`` margin.
    """
    dens_o = np.zeros((full, full))  # contaminants + carbon
    for (x, y), r in zip(obs.xy, obs.radii):
        _contaminant(rng, dens_o, x + off, y + off, r)
    carbon_mask = None
    if obs.carbon is not None:
        yy, xx = np.mgrid[0:full, 0:full].astype(np.float64) - off
        sd = _carbon_dist(obs.carbon, np.stack([xx, yy], axis=-1))
        carbon_mask = 0.5 * (1.0 + np.tanh(sd / 1.0))  # soft edge, ~1 px
        carbon_tex = 1.0 + 0.3 * _smooth_noise(rng, (full, full), 2.0)
        dens_o += rng.uniform(0.6, 1.2) * carbon_mask * carbon_tex
    if obs.present:
        # Taper carbon / contaminants to 0 across the margin (outside the image) so
        # that the FFT wrap-around of the canvas adds no sharp edge.
        ramp = np.minimum(np.arange(full), np.arange(full)[::-1]).astype(np.float64)
        w1 = np.clip(ramp / max(pad - 1, 1), 0.0, 1.0)
        w1 = 0.5 - 0.5 * np.cos(math.pi * w1)
        dens_o *= w1[:, None] * w1[None, :]
    return dens_o, carbon_mask


def _contaminant(
    rng: np.random.Generator, canvas: np.ndarray, cx: float, cy: float, radius: float
) -> None:
    """Add an irregular, textured, dense blob (ice crystal / aggregate) at (cx, cy), in place.

    Its outline is ``radius * (1 + sum_m a_m cos(m theta + phi_m))``, m = 2..5, with a
    soft (~1 px) edge; density 2.5-6x a particle's mean projected density.
    """
    m = np.arange(2, 6)
    a = rng.uniform(0.0, 0.12, size=m.size)
    phi = rng.uniform(0.0, 2 * math.pi, size=m.size)
    amp = rng.uniform(2.5, 6.0)
    half = int(math.ceil(radius * (1.0 + a.sum()))) + 3
    h, w = canvas.shape
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 2, h)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 2, w)
    texture = 1.0 + 0.25 * _smooth_noise(rng, (2 * half + 2, 2 * half + 2), max(radius / 4, 1.0))
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    r = np.hypot(dx, dy)
    th = np.arctan2(dy, dx)
    rb = radius * (1.0 + (a[:, None, None] * np.cos(m[:, None, None] * th + phi[:, None, None])).sum(0))
    mask = 0.5 * (1.0 + np.tanh((rb - r) / 0.8))
    ty0, tx0 = y0 - (int(cy) - half), x0 - (int(cx) - half)
    tex = texture[ty0 : ty0 + (y1 - y0), tx0 : tx0 + (x1 - x0)]
    canvas[y0:y1, x0:x1] += amp * mask * tex
