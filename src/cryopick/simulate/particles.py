"""Particle templates (3D Gaussian blobs), their random projections and their placement."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SimulationConfig

# Spawn key of the template stream; micrograph ``i`` uses spawn key ``(i,)`` (as given by
# ``SeedSequence(seed).spawn(n)``), so the templates never share a stream with one.
_TEMPLATE_SPAWN_KEY = 2**31 - 1
_TEMPLATE_KINDS = ("globular", "elongated", "multilobed")


@dataclass
class Template:
    """A 3D density: a sum of isotropic Gaussian blobs, centred on its centre of mass.

    Units are pixels; blob ``k`` has centre ``centres[k]`` (x, y, z), std ``sigmas[k]`` and
    integrated mass ``masses[k]``.
    """

    kind: str
    radius: float  # envelope radius, px
    centres: np.ndarray  # (K, 3)
    sigmas: np.ndarray  # (K,)
    masses: np.ndarray  # (K,)

    @property
    def extent(self) -> float:
        """Radius (px) beyond which every projection is negligible (3 sigma)."""
        return float(np.max(np.linalg.norm(self.centres, axis=1) + 3.0 * self.sigmas))



def _in_unit_ball(rng: np.random.Generator, k: int) -> np.ndarray:
    """(k, 3) points uniform in the unit ball."""
    d = rng.normal(size=(k, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * rng.uniform(0.0, 1.0, size=(k, 1)) ** (1.0 / 3.0)


def _make_template(rng: np.random.Generator, kind: str, radius: float) -> Template:
    """One random blob template of the given kind and envelope radius (px).

    Blob centres are drawn inside the envelope shrunk by ~1.2 blob sigma, so that the
    1-sigma outline of the particle reaches about ``radius``.
    """
    r = radius
    if kind == "globular":  # a slightly squashed sphere filled with blobs
        k = int(rng.integers(12, 21))
        sig = r * rng.uniform(0.15, 0.25, size=k)
        axes = r * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.8, 1.0)])
        pos = _in_unit_ball(rng, k) * np.clip(axes[None, :] - 1.2 * sig[:, None], 0.1 * r, None)
    elif kind == "elongated":  # a rod / cigar about twice as long as wide
        k = int(rng.integers(10, 19))
        sig = r * rng.uniform(0.12, 0.2, size=k)
        axes = r * np.array([1.0, rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.55)])
        pos = _in_unit_ball(rng, k) * np.clip(axes[None, :] - 1.2 * sig[:, None], 0.05 * r, None)
    elif kind == "multilobed":  # 2-4 domains around a small connecting core
        n_lobes = int(rng.integers(2, 5))
        lobe_dirs = rng.normal(size=(n_lobes, 3))
        lobe_dirs /= np.linalg.norm(lobe_dirs, axis=1, keepdims=True)
        lobe_r = r * rng.uniform(0.4, 0.5, size=n_lobes)
        lobe_c = lobe_dirs * (r - lobe_r)[:, None]
        per = rng.integers(3, 7, size=n_lobes)
        owner = np.repeat(np.arange(n_lobes), per)
        sig_l = lobe_r[owner] * rng.uniform(0.35, 0.5, size=owner.size)
        pos_l = lobe_c[owner] + _in_unit_ball(rng, owner.size) * (lobe_r[owner] - sig_l)[:, None]
        sig_c = r * rng.uniform(0.2, 0.28, size=2)
        pos_c = _in_unit_ball(rng, 2) * 0.15 * r
        pos, sig = np.concatenate([pos_l, pos_c]), np.concatenate([sig_l, sig_c])
        k = len(sig)
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    # Random overall orientation of the envelope (elongated axis etc.).
    pos = pos @ _random_rotation(rng).T
    sig = np.maximum(sig, 0.8)  # keep blobs resolvable on the pixel grid
    mass = rng.uniform(0.5, 1.5, size=k) * sig**2  # similar peak density for every blob
    pos = pos - (mass[:, None] * pos).sum(0) / mass.sum()  # centre of mass at the origin
    return Template(kind=kind, radius=r, centres=pos, sigmas=sig, masses=mass)


def make_templates(cfg: SimulationConfig) -> list[Template]:
    """The ``cfg.n_shapes`` templates of a simulation; deterministic for ``cfg.seed``.

    Kinds cycle globular, elongated, multi-lobed.  Masses are scaled so that a template
    of radius ``diameter/2`` has total mass ``pi (diameter/2)^2`` (mean projected density
    ~1 over its disk), and mass grows as radius**3.
    """
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_TEMPLATE_SPAWN_KEY,)))
    r_nom = cfg.diameter / 2
    out = []
    for i in range(cfg.n_shapes):
        kind = _TEMPLATE_KINDS[i % len(_TEMPLATE_KINDS)]
        radius = r_nom * (1.0 + cfg.size_jitter * rng.uniform(-1.0, 1.0))
        t = _make_template(rng, kind, radius)
        t.masses = t.masses * (math.pi * r_nom**2 * (radius / r_nom) ** 3 / t.masses.sum())
        out.append(t)
    return out



def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rotation matrix uniform on SO(3) (from a uniform unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _splat(canvas: np.ndarray, cx: float, cy: float, t: Template, rot: np.ndarray) -> None:
    """Add the projection along z of template ``t`` rotated by ``rot`` at (cx, cy), in place.

    Each 3D blob projects to a 2D Gaussian of the same sigma and mass; the 2D Gaussians
    are separable, so the patch is ``(GY * amp)^T @ GX`` with GY (K, Py), GX (K, Px).
    """
    c = t.centres @ rot.T  # (K, 3) rotated blob centres
    half = int(math.ceil(t.extent)) + 1
    h, w = canvas.shape
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 2, h)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    ys = np.arange(y0, y1, dtype=np.float64)
    xs = np.arange(x0, x1, dtype=np.float64)
    inv = 1.0 / (2.0 * t.sigmas**2)  # (K,)
    gy = np.exp(-((ys[None, :] - (cy + c[:, 1])[:, None]) ** 2) * inv[:, None])  # (K, Py)
    gx = np.exp(-((xs[None, :] - (cx + c[:, 0])[:, None]) ** 2) * inv[:, None])  # (K, Px)
    amp = t.masses / (2.0 * math.pi * t.sigmas**2)  # (K,) peak of each 2D Gaussian
    canvas[y0:y1, x0:x1] += (gy * amp[:, None]).T @ gx



def _place_particles(
    rng: np.random.Generator,
    n: int,
    lo: float,
    hi: float,
    sep: float,
    ok,
    max_tries: int,
) -> np.ndarray:
    """Random sequential placement of up to ``n`` points in ``[lo, hi]^2``.

    Points are at least ``sep`` apart and satisfy ``ok(points) -> bool mask`` (exclusion
    zones).  Candidates are drawn in batches; each batch is first screened against the
    points already accepted (vectorised), then accepted one by one.  Returns (m, 2), m <= n.
    """
    pts = np.empty((n, 2))
    m = 0
    tries = 0
    sep2 = sep * sep
    while m < n and tries < max_tries:
        batch = rng.uniform(lo, hi, size=(256, 2))
        tries += batch.shape[0]
        batch = batch[ok(batch)]
        if sep > 0 and m and batch.size:
            d2 = ((batch[:, None, :] - pts[None, :m, :]) ** 2).sum(-1)
            batch = batch[(d2 >= sep2).all(1)]
        for p in batch:
            if m >= n:
                break
            if sep > 0 and m and (((pts[:m] - p) ** 2).sum(1) < sep2).any():
                continue
            pts[m] = p
            m += 1
    return pts[:m].copy()


def _disk_mask(size: int, coords: np.ndarray, r: float) -> np.ndarray:
    """(size, size) bool mask of the pixels within ``r`` of any of the (N, 2) coords."""
    mask = np.zeros((size, size), dtype=bool)
    ri = int(math.ceil(r))
    for x, y in coords:
        y0, y1 = max(int(y) - ri, 0), min(int(y) + ri + 2, size)
        x0, x1 = max(int(x) - ri, 0), min(int(x) + ri + 2, size)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    return mask
