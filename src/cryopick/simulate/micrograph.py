"""One simulated micrograph, formed in named steps, and a seeded set of them.

The steps draw from the micrograph's random stream in a fixed order (microscope state,
obstacles, particle positions and shapes, particle poses, contaminant and carbon
densities, carbon darkening, noise, ice, labels): that order is what makes a seed
reproduce the same micrograph.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.fft as sfft

from .config import SimulatedMicrograph, SimulationConfig, _config_dict
from .noise import _ice_field
from .obstacles import _draw_obstacles, _Obstacles, _obstacle_density
from .optics import ctf_2d
from .particles import Template, _disk_mask, _place_particles, _random_rotation, _splat, make_templates


class _Canvas(NamedTuple):
    """The image (``size`` px) plus a tapered margin of ``pad`` px that keeps the FFT
    wrap-around away; image pixel (0, 0) is canvas pixel (off, off)."""

    size: int
    pad: int
    full: int  # canvas side, px

    @property
    def off(self) -> int:
        return self.pad

    @property
    def crop(self) -> tuple[slice, slice]:
        """The image inside the canvas."""
        return (slice(self.off, self.off + self.size), slice(self.off, self.off + self.size))


def _canvas(cfg: SimulationConfig) -> _Canvas:
    size = int(cfg.size)
    pad = int(max(2 * cfg.diameter, 32))
    return _Canvas(size, pad, sfft.next_fast_len(size + 2 * pad, real=True))


def _microscope_state(cfg: SimulationConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    """Defocus along and across the astigmatism axis (µm) and the axis angle (radians)."""
    df_mean = float(rng.uniform(*cfg.defocus_range))
    dd = float(rng.uniform(0.0, cfg.astigmatism))
    df_u, df_v = df_mean + dd / 2, max(df_mean - dd / 2, 0.0)
    astig_angle = float(rng.uniform(0.0, math.pi))
    return df_u, df_v, astig_angle


def _requested_count(cfg: SimulationConfig, obs: _Obstacles, r_p: float) -> int:
    """``cfg.n_particles``, or the default count scaled to the area free of obstacles."""
    if cfg.n_particles is not None:
        return int(cfg.n_particles)
    # Same density of particles in the free area whatever carbon/contaminants take.
    g = np.linspace(r_p, int(cfg.size) - 1 - r_p, 48)
    free = obs.allowed(np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2), r_p).mean()
    return int(round(cfg.default_particle_count() * free))


def _particle_density(
    rng: np.random.Generator, canvas: _Canvas, coords: np.ndarray, shape_ids: np.ndarray,
    templates: list[Template],
) -> np.ndarray:
    """The particles projected on the canvas, each in its own random orientation."""
    dens_p = np.zeros((canvas.full, canvas.full))  # particles only
    for (x, y), sid in zip(coords, shape_ids):
        _splat(dens_p, x + canvas.off, y + canvas.off, templates[sid], _random_rotation(rng))
    return dens_p


def _through_ctf(dens: np.ndarray, ctf: np.ndarray, canvas: _Canvas) -> np.ndarray:
    """A canvas density filtered by the (half-plane) CTF, cropped to the image."""
    return sfft.irfft2(sfft.rfft2(dens) * ctf, s=(canvas.full, canvas.full))[canvas.crop]


def _reference_signal_var(cfg: SimulationConfig, t: Template, ctf: np.ndarray, canvas: _Canvas) -> float:
    """Signal variance of one particle of template ``t`` (fixed pose) under this CTF.

    Used when a micrograph has no particle, so that its noise level matches its siblings.
    """
    c = canvas.off + (cfg.size - 1) / 2
    dens = np.zeros((canvas.full, canvas.full))
    _splat(dens, c, c, t, np.eye(3))
    img = _through_ctf(dens, ctf, canvas)
    mask = _disk_mask(cfg.size, np.array([[c - canvas.off, c - canvas.off]]), cfg.diameter / 2)
    return float(img[mask].var())


def _noise_levels(
    cfg: SimulationConfig, img_p: np.ndarray, coords: np.ndarray, template: Template, ctf: np.ndarray,
    canvas: _Canvas,
) -> tuple[float, float]:
    """(signal std over the particle disks, noise std = signal std / sqrt(snr))."""
    if len(coords):
        disks = _disk_mask(canvas.size, coords, cfg.diameter / 2)
        signal_var = float(img_p[disks].var())
    else:
        signal_var = _reference_signal_var(cfg, template, ctf, canvas)
    signal_std = math.sqrt(max(signal_var, 1e-30))
    return signal_std, signal_std / math.sqrt(cfg.snr)


def _recorded_image(
    cfg: SimulationConfig, rng: np.random.Generator, img: np.ndarray, carbon_mask: np.ndarray | None,
    canvas: _Canvas, signal_std: float, noise_std: float,
) -> np.ndarray:
    """Carbon darkening, shot noise and the ice field on the filtered image, then mean 0, std 1."""
    size = canvas.size
    if carbon_mask is not None:
        # Thicker film: an amplitude (intensity) drop on the carbon, beyond the weak
        # phase term; makes the carbon visibly darker, as in real micrographs.
        img = img - rng.uniform(1.0, 2.0) * signal_std * carbon_mask[canvas.crop]
    img = img + noise_std * rng.standard_normal((size, size))
    if cfg.ice_gradient > 0:
        img = img + cfg.ice_gradient * signal_std * _ice_field(rng, size)
    return (img - img.mean()) / img.std()


def _labelled_subset(cfg: SimulationConfig, rng: np.random.Generator, n_p: int) -> np.ndarray:
    """Sorted indices of the labelled particles: ``labelled_fraction`` of them, at least 1 if > 0."""
    n_lab = int(round(cfg.labelled_fraction * n_p))
    if n_p and cfg.labelled_fraction > 0:
        n_lab = max(n_lab, 1)
    return np.sort(rng.choice(n_p, size=n_lab, replace=False)) if n_lab else np.zeros(0, int)


def simulate_micrograph(
    cfg: SimulationConfig,
    rng: np.random.Generator,
    name: str,
    templates: list[Template] | None = None,
) -> SimulatedMicrograph:
    """Simulate one micrograph with the random stream ``rng``.

    ``templates`` defaults to :func:`make_templates(cfg) <make_templates>` (the same for
    every micrograph of a seed).  Deterministic given ``cfg``, the state of ``rng`` and
    ``templates``.
    """
    cfg.validate()
    if templates is None:
        templates = make_templates(cfg)
    r_p = cfg.diameter / 2  # nominal particle radius, px
    df_u, df_v, astig_angle = _microscope_state(cfg, rng)
    canvas = _canvas(cfg)
    obs = _draw_obstacles(cfg, rng, r_p)

    n_req = _requested_count(cfg, obs, r_p)
    coords = _place_particles(
        rng, n_req, r_p, canvas.size - 1 - r_p, cfg.min_separation * cfg.diameter,
        lambda p: obs.allowed(p, r_p), max_tries=max(20000, 400 * n_req),
    )
    if cfg.n_particles is not None and len(coords) < n_req:
        warnings.warn(
            f"{name}: placed {len(coords)} of the {n_req} requested particles "
            "(crowding, contaminants or carbon left no room)",
            stacklevel=2,
        )
    shape_ids = rng.integers(0, len(templates), size=len(coords))

    dens_p = _particle_density(rng, canvas, coords, shape_ids, templates)
    dens_o, carbon_mask = _obstacle_density(rng, obs, canvas.full, canvas.off, canvas.pad)
    ctf = ctf_2d(
        (canvas.full, canvas.full), cfg.pixel_size, df_u, df_v, astig_angle, cfg.voltage, cfg.cs,
        cfg.amplitude_contrast, cfg.bfactor, half=True,
    )
    img_p = _through_ctf(dens_p, ctf, canvas)
    img_o = _through_ctf(dens_o, ctf, canvas) if obs.present else 0.0
    signal_std, noise_std = _noise_levels(cfg, img_p, coords, templates[0], ctf, canvas)
    img = _recorded_image(cfg, rng, img_p + img_o, carbon_mask, canvas, signal_std, noise_std)
    lab_idx = _labelled_subset(cfg, rng, len(coords))

    return SimulatedMicrograph(
        name=name,
        image=img.astype(np.float32),
        coords=coords.reshape(-1, 2),
        labelled=coords[lab_idx].reshape(-1, 2),
        defocus_um=0.5 * (df_u + df_v),
        contaminants=obs.xy.reshape(-1, 2),
        pixel_size=float(cfg.pixel_size),
        meta={
            "shape_ids": shape_ids,
            "labelled_index": lab_idx,
            "defocus_u_um": df_u,
            "defocus_v_um": df_v,
            "astig_angle_rad": astig_angle,
            "n_requested": n_req,
            "signal_std": signal_std,
            "noise_std": noise_std,
            "contaminant_radii": obs.radii,
            "carbon": obs.carbon,
            "config": _config_dict(cfg),
        },
    )


def simulate(cfg: SimulationConfig) -> list[SimulatedMicrograph]:
    """Simulate ``cfg.n`` micrographs named ``sim_0000``, ``sim_0001``, ...

    Deterministic for ``cfg.seed``: micrograph ``i`` uses the ``i``-th child of
    ``SeedSequence(seed)``, so it does not depend on ``cfg.n`` either.
    """
    cfg.validate()
    templates = make_templates(cfg)
    children = np.random.SeedSequence(cfg.seed).spawn(cfg.n)
    return [
        simulate_micrograph(cfg, np.random.default_rng(ss), f"sim_{i:04d}", templates)
        for i, ss in enumerate(children)
    ]
