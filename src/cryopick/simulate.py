"""Built-in cryo-EM micrograph simulator (numpy/scipy only).

Used by the demo, the tests and the benchmarks.  It aims to be realistic enough that a
simple blob picker does not trivially win, while staying fast (a 512x512 micrograph with
~60 particles takes a few tens of milliseconds on one CPU core).

Model
-----
* **Particles.**  ``n_shapes`` 3D density templates are drawn once per simulation (shared
  by all its micrographs, like the species in one sample).  Each template is a sum of 3D
  Gaussian blobs inside an envelope: *globular*, *elongated* or *multi-lobed*, with a
  radius jittered by ``size_jitter`` around ``diameter / 2``.  A template's total mass
  scales with radius**3 and a nominal particle (radius ``diameter / 2``) has a mean
  projected density of about 1 over its disk.  Each particle instance gets its own
  orientation, uniform on SO(3): the blob centres are rotated and each blob is splatted
  as an analytic 2D Gaussian (the exact projection of a 3D Gaussian), which is much
  faster than rotating a voxel volume.  A particle's label is the projection of its
  centre of mass.
* **Placement.**  Random sequential placement with a minimum centre distance of
  ``min_separation * diameter`` between particles, at least ``diameter / 2`` from the
  image border, clear of contaminants and of the carbon region.
* **Image formation.**  The projected density (particles, contaminants, carbon) is
  filtered by the CTF (:func:`ctf_2d`); the particle part alone defines the signal
  variance, measured over the particle disks; white Gaussian noise of variance
  ``signal_var / snr`` is added (shot noise approximation), then a slow ice-thickness
  field, then the micrograph is normalised to mean 0, std 1 (float32).

Conventions
-----------
* Coordinates are in pixels, ``(x, y)`` = ``(column, row)``, 0-based, with integer values
  at pixel centres: pixel ``image[i, j]`` has centre ``(x=j, y=i)``.  The STAR files
  written by :func:`save_simulation` carry the same numbers.
* Sign / contrast: positive density times a CTF that equals ``-amplitude_contrast`` at
  zero frequency (and is negative over the whole first lobe for underfocus), so
  **particles are darker than the surrounding ice** in the low-pass filtered image, as
  in typical cryo-EM micrographs.
* Defocus is positive for underfocus, in micrometres.
* Carbon (``carbon_edge=True``): the micrograph is at the edge of a hole in a holey
  carbon film; the carbon (outside a large circle, covering ~15-35 % of the image on a
  random side) is thicker, so darker, with its own texture and Fresnel fringes at the
  edge.  **No particle is placed on the carbon**: a pick there is a false positive.
* Contaminants (ice crystals, aggregates) are larger (1.5-4 particle diameters),
  irregular, of higher density (so higher contrast) and never labelled.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from cryopick.errors import InputError

__all__ = [
    "SimulationConfig",
    "SimulatedMicrograph",
    "Template",
    "ctf_2d",
    "electron_wavelength",
    "make_templates",
    "particle_visibility",
    "simulate",
    "simulate_micrograph",
    "save_simulation",
]

# Spawn key of the template stream; micrograph ``i`` uses spawn key ``(i,)`` (as given by
# ``SeedSequence(seed).spawn(n)``), so the templates never share a stream with one.
_TEMPLATE_SPAWN_KEY = 2**31 - 1
# Coverage of random sequential adsorption of hard disks at jamming (~0.547).
_RSA_JAMMING = 0.547
# Target area fraction covered by particle disks when ``n_particles`` is None.
_DEFAULT_AREA_FRACTION = 0.25
_TEMPLATE_KINDS = ("globular", "elongated", "multilobed")


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass
class SimulationConfig:
    """Parameters of a simulated data set; see the module docstring for the model."""

    n: int = 8  # number of micrographs
    size: int = 512  # square side, px
    diameter: float = 32.0  # nominal particle diameter, px
    n_particles: int | None = None  # per micrograph; None: ~25 % of the area covered
    min_separation: float = 1.0  # min centre distance, in diameters (<1 allows crowding)
    snr: float = 0.05  # signal variance (over particle disks, after CTF) / noise variance
    pixel_size: float = 1.5  # Å/px
    defocus_range: tuple[float, float] = (1.0, 2.5)  # µm, underfocus positive
    astigmatism: float = 0.05  # µm, max |defocus_u - defocus_v|
    voltage: float = 300.0  # kV
    cs: float = 2.7  # mm
    amplitude_contrast: float = 0.07
    bfactor: float = 50.0  # Å^2, mild envelope exp(-B k^2 / 4)
    n_shapes: int = 3  # distinct 3D templates
    size_jitter: float = 0.15  # relative radius variation of the templates
    ice_gradient: float = 0.5  # amplitude of the slow ice background, in signal stds
    carbon_edge: bool = False  # a carbon region with an edge on one side
    contaminants: int = 0  # ice crystals / aggregates per micrograph (never labelled)
    labelled_fraction: float = 1.0  # share of particles in the (sparse) labels
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first unusable option."""

        def bad(option: str, why: str) -> InputError:
            return InputError(f"simulation option {option}={getattr(self, option)!r}: {why}")

        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        for name in ("n", "size", "n_shapes", "contaminants", "seed"):
            if not is_int(getattr(self, name)):
                raise bad(name, "must be an integer")
        for name in (
            "diameter", "min_separation", "snr", "pixel_size", "astigmatism", "voltage", "cs",
            "amplitude_contrast", "bfactor", "size_jitter", "ice_gradient", "labelled_fraction",
        ):
            v = getattr(self, name)
            if not is_num(v) or not math.isfinite(float(v)):
                raise bad(name, "must be a finite number")
        if self.n < 1:
            raise bad("n", "need at least 1 micrograph")
        if self.size < 32:
            raise bad("size", "micrographs must be at least 32 px wide")
        if not (2 < self.diameter < self.size / 2):
            raise bad("diameter", f"must be > 2 and < size/2 = {self.size / 2:g} px")
        if self.min_separation < 0:
            raise bad("min_separation", "must be >= 0 (in particle diameters)")
        if not self.snr > 0:
            raise bad("snr", "must be > 0")
        if not self.pixel_size > 0:
            raise bad("pixel_size", "must be > 0 (Å/px)")
        dr = self.defocus_range
        if (
            not isinstance(dr, (tuple, list))
            or len(dr) != 2
            or not all(is_num(v) and math.isfinite(float(v)) for v in dr)
            or not (0 <= dr[0] <= dr[1])
        ):
            raise bad("defocus_range", "must be two numbers (min, max) in µm with 0 <= min <= max")
        if self.astigmatism < 0:
            raise bad("astigmatism", "must be >= 0 µm")
        if not self.voltage > 0:
            raise bad("voltage", "must be > 0 kV")
        if self.cs < 0:
            raise bad("cs", "must be >= 0 mm")
        if not (0 <= self.amplitude_contrast < 1):
            raise bad("amplitude_contrast", "must be in [0, 1)")
        if self.bfactor < 0:
            raise bad("bfactor", "must be >= 0 Å^2")
        if self.n_shapes < 1:
            raise bad("n_shapes", "need at least 1 template")
        if not (0 <= self.size_jitter < 1):
            raise bad("size_jitter", "must be in [0, 1)")
        if self.ice_gradient < 0:
            raise bad("ice_gradient", "must be >= 0")
        if self.contaminants < 0:
            raise bad("contaminants", "must be >= 0")
        if not (0 <= self.labelled_fraction <= 1):
            raise bad("labelled_fraction", "must be in [0, 1]")
        if self.n_particles is not None:
            if not is_int(self.n_particles) or self.n_particles < 0:
                raise bad("n_particles", "must be None or an integer >= 0")
            cap = self._capacity()
            if self.n_particles > cap:
                raise bad(
                    "n_particles",
                    f"at most ~{cap} particles fit in a {self.size} px micrograph with "
                    f"diameter {self.diameter:g} and min_separation {self.min_separation:g}",
                )

    # ---- derived quantities ----------------------------------------------------------

    def _usable_side(self) -> float:
        """Side of the square where particle centres may lie, px."""
        return max(self.size - 1 - self.diameter, 0.0)

    def _capacity(self) -> int:
        """Rough max number of particles random placement can fit (None if unbounded)."""
        side = self._usable_side()
        sep = self.min_separation * self.diameter
        if sep <= 0:
            return 10**9
        # Disks of diameter ``sep`` centred in a (side + sep)^2 box, at RSA jamming.
        return int(_RSA_JAMMING * (side + sep) ** 2 / (math.pi * (sep / 2) ** 2))

    def default_particle_count(self) -> int:
        """Particles per micrograph when ``n_particles`` is None (before carbon/contaminants)."""
        r = self.diameter / 2
        target = _DEFAULT_AREA_FRACTION * self._usable_side() ** 2 / (math.pi * r * r)
        return int(max(1, min(round(target), int(0.75 * self._capacity()))))


@dataclass
class SimulatedMicrograph:
    """One simulated micrograph and its ground truth.

    ``coords``, ``labelled`` and ``contaminants`` are ``(N, 2)`` float64 arrays of
    ``(x, y)`` pixel coordinates (see the module conventions).
    """

    name: str
    image: np.ndarray  # (H, W) float32, mean 0, std 1
    coords: np.ndarray  # (N, 2) all particles (the full truth)
    labelled: np.ndarray  # (M, 2) labelled subset, M = round(labelled_fraction * N)
    defocus_um: float  # mean defocus, µm (underfocus positive)
    contaminants: np.ndarray  # (C, 2) contaminant centres (not particles)
    pixel_size: float = 1.0  # Å/px
    # Extra truth: shape_ids (N,), labelled_index (M,), defocus_u_um, defocus_v_um,
    # astig_angle_rad, n_requested, signal_std, noise_std, carbon (None or a dict with
    # the hole circle centre_xy / radius: carbon is where |p - centre| > radius), config.
    meta: dict = field(default_factory=dict)


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


# --------------------------------------------------------------------------------------
# CTF
# --------------------------------------------------------------------------------------


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    v = voltage_kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_2d(
    shape: tuple[int, int],
    pixel_size: float,
    defocus_u_um: float,
    defocus_v_um: float,
    astig_angle: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    bfactor: float = 50.0,
    half: bool = False,
) -> np.ndarray:
    """Contrast transfer function sampled on an FFT grid.

    ``CTF(k) = -(sqrt(1 - A^2) sin(chi) + A cos(chi)) * exp(-B |k|^2 / 4)`` with
    ``chi = pi lambda df(theta) |k|^2 - pi/2 Cs lambda^3 |k|^4`` and the astigmatic
    defocus ``df(theta) = (du + dv)/2 + (du - dv)/2 cos(2 (theta - astig_angle))``.

    So ``CTF(0) = -amplitude_contrast``, ``|CTF| <= 1`` and the first lobe is negative
    for underfocus (positive defocus): positive density images dark.

    Args:
        shape: ``(H, W)`` of the real-space image.
        pixel_size: Å/px.
        defocus_u_um, defocus_v_um: defocus (µm, underfocus positive) along the direction
            ``astig_angle`` and perpendicular to it.
        astig_angle: radians, from the x (column) axis towards y (rows).
        voltage_kv, cs_mm, amplitude_contrast: microscope parameters.
        bfactor: Å^2, envelope ``exp(-B k^2 / 4)`` (0 disables).
        half: return the ``(H, W//2 + 1)`` half-plane of ``numpy.fft.rfft2`` instead of the
            full ``(H, W)`` plane of ``numpy.fft.fft2`` (both unshifted, DC at ``[0, 0]``).

    Returns:
        float64 array of the CTF values.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise InputError(f"ctf_2d: shape {shape!r} must be two positive sizes")
    if not pixel_size > 0:
        raise InputError(f"ctf_2d: pixel_size={pixel_size!r} must be > 0")
    if not 0 <= amplitude_contrast < 1:
        raise InputError(f"ctf_2d: amplitude_contrast={amplitude_contrast!r} must be in [0, 1)")
    if bfactor < 0:
        raise InputError(f"ctf_2d: bfactor={bfactor!r} must be >= 0")
    lam = electron_wavelength(voltage_kv)  # Å
    ky = np.fft.fftfreq(h, d=pixel_size)[:, None]  # Å^-1
    kx = (np.fft.rfftfreq(w, d=pixel_size) if half else np.fft.fftfreq(w, d=pixel_size))[None, :]
    k2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    du, dv = defocus_u_um * 1e4, defocus_v_um * 1e4  # Å
    df = 0.5 * (du + dv) + 0.5 * (du - dv) * np.cos(2.0 * (theta - astig_angle))
    cs = cs_mm * 1e7  # Å
    chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs * lam**3 * k2 * k2
    a = amplitude_contrast
    ctf = -(math.sqrt(1.0 - a * a) * np.sin(chi) + a * np.cos(chi))
    if bfactor:
        ctf = ctf * np.exp(-0.25 * bfactor * k2)
    return ctf


# --------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------


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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """White noise low-passed by a Gaussian of std ``sigma_px`` (px), normalised to std 1."""
    f = sfft.rfft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    f *= np.exp(-2.0 * math.pi**2 * sigma_px**2 * (kx * kx + ky * ky))
    out = sfft.irfft2(f, s=shape)
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


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


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


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
    size = int(cfg.size)
    r_p = cfg.diameter / 2  # nominal particle radius, px

    # ---- microscope state of this micrograph ---------------------------------------
    df_mean = float(rng.uniform(*cfg.defocus_range))
    dd = float(rng.uniform(0.0, cfg.astigmatism))
    df_u, df_v = df_mean + dd / 2, max(df_mean - dd / 2, 0.0)
    astig_angle = float(rng.uniform(0.0, math.pi))

    # ---- canvas: the image plus a tapered margin, to keep FFT wrap-around away -----
    pad = int(max(2 * cfg.diameter, 32))
    full = sfft.next_fast_len(size + 2 * pad, real=True)
    off = pad  # image pixel (0, 0) is canvas pixel (off, off)

    # ---- carbon: outside a large circle (the hole edge), on a random side ----------
    carbon = None
    if cfg.carbon_edge:
        ang = rng.uniform(0.0, 2 * math.pi)
        u = np.array([math.cos(ang), math.sin(ang)])  # from the image centre to the carbon
        frac = rng.uniform(0.15, 0.35)  # roughly the share of the image on carbon
        hole_r = size * rng.uniform(1.5, 3.0)
        edge_pt = np.array([(size - 1) / 2] * 2) + u * size * (0.5 - frac)
        carbon = {"centre_xy": (edge_pt - u * hole_r).tolist(), "radius": float(hole_r)}

    def carbon_dist(p: np.ndarray) -> np.ndarray:
        """Signed distance (px) of (..., 2) points to the carbon edge, > 0 on carbon."""
        c = np.asarray(carbon["centre_xy"])
        return np.linalg.norm(p - c, axis=-1) - carbon["radius"]

    # ---- contaminants: anywhere, may overlap each other and the border -------------
    n_cont = int(cfg.contaminants)
    cont_xy = rng.uniform(0.0, size - 1, size=(n_cont, 2))
    cont_r = r_p * rng.uniform(1.5, 4.0, size=n_cont)
    cont_keepout = cont_r * 1.5 + r_p + 2.0  # outline can reach 1.48 radius

    # ---- particle positions --------------------------------------------------------
    def allowed(p: np.ndarray) -> np.ndarray:
        """(N,) bool: may a particle centre lie at each of the (N, 2) points?"""
        keep = np.ones(len(p), dtype=bool)
        if n_cont:
            d = np.linalg.norm(p[:, None, :] - cont_xy[None, :, :], axis=-1)
            keep &= (d >= cont_keepout[None, :]).all(1)
        if carbon is not None:
            keep &= carbon_dist(p) <= -r_p
        return keep

    if cfg.n_particles is None:
        # Same density of particles in the free area whatever carbon/contaminants take.
        g = np.linspace(r_p, size - 1 - r_p, 48)
        free = allowed(np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)).mean()
        n_req = int(round(cfg.default_particle_count() * free))
    else:
        n_req = int(cfg.n_particles)

    coords = _place_particles(
        rng, n_req, r_p, size - 1 - r_p, cfg.min_separation * cfg.diameter, allowed,
        max_tries=max(20000, 400 * n_req),
    )
    if cfg.n_particles is not None and len(coords) < n_req:
        warnings.warn(
            f"{name}: placed {len(coords)} of the {n_req} requested particles "
            "(crowding, contaminants or carbon left no room)",
            stacklevel=2,
        )
    n_p = len(coords)
    shape_ids = rng.integers(0, len(templates), size=n_p)

    # ---- densities on the canvas ---------------------------------------------------
    dens_p = np.zeros((full, full))  # particles only
    for (x, y), sid in zip(coords, shape_ids):
        _splat(dens_p, x + off, y + off, templates[sid], _random_rotation(rng))
    dens_o = np.zeros((full, full))  # contaminants + carbon
    for (x, y), r in zip(cont_xy, cont_r):
        _contaminant(rng, dens_o, x + off, y + off, r)
    carbon_mask = None
    if carbon is not None:
        yy, xx = np.mgrid[0:full, 0:full].astype(np.float64) - off
        sd = carbon_dist(np.stack([xx, yy], axis=-1))
        carbon_mask = 0.5 * (1.0 + np.tanh(sd / 1.0))  # soft edge, ~1 px
        carbon_tex = 1.0 + 0.3 * _smooth_noise(rng, (full, full), 2.0)
        dens_o += rng.uniform(0.6, 1.2) * carbon_mask * carbon_tex
    if n_cont or carbon is not None:
        # Taper carbon / contaminants to 0 across the margin (outside the image) so
        # that the FFT wrap-around of the canvas adds no sharp edge.
        ramp = np.minimum(np.arange(full), np.arange(full)[::-1]).astype(np.float64)
        w1 = np.clip(ramp / max(pad - 1, 1), 0.0, 1.0)
        w1 = 0.5 - 0.5 * np.cos(math.pi * w1)
        dens_o *= w1[:, None] * w1[None, :]

    # ---- CTF -------------------------------------------------------------------------
    ctf = ctf_2d(
        (full, full), cfg.pixel_size, df_u, df_v, astig_angle, cfg.voltage, cfg.cs,
        cfg.amplitude_contrast, cfg.bfactor, half=True,
    )
    crop = (slice(off, off + size), slice(off, off + size))
    img_p = sfft.irfft2(sfft.rfft2(dens_p) * ctf, s=(full, full))[crop]
    img_o = (
        sfft.irfft2(sfft.rfft2(dens_o) * ctf, s=(full, full))[crop]
        if (n_cont or carbon is not None)
        else 0.0
    )

    # ---- signal variance over the particle disks ------------------------------------
    if n_p:
        disks = _disk_mask(size, coords, r_p)
        signal_var = float(img_p[disks].var())
    else:
        signal_var = _reference_signal_var(cfg, templates[0], ctf, full, off)
    signal_std = math.sqrt(max(signal_var, 1e-30))
    noise_std = signal_std / math.sqrt(cfg.snr)

    img = img_p + img_o
    if carbon is not None:
        # Thicker film: an amplitude (intensity) drop on the carbon, beyond the weak
        # phase term; makes the carbon visibly darker, as in real micrographs.
        img = img - rng.uniform(1.0, 2.0) * signal_std * carbon_mask[crop]
    img = img + noise_std * rng.standard_normal((size, size))
    if cfg.ice_gradient > 0:
        field_ = _smooth_noise(rng, (size, size), size / 6.0)
        g = rng.normal(size=2)
        yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
        field_ = field_ + rng.uniform(0.0, 1.5) * (g[0] * xx + g[1] * yy) / 0.29
        field_ = (field_ - field_.mean()) / (field_.std() + 1e-12)
        img = img + cfg.ice_gradient * signal_std * field_
    img = (img - img.mean()) / img.std()

    # ---- labels ----------------------------------------------------------------------
    n_lab = int(round(cfg.labelled_fraction * n_p))
    if n_p and cfg.labelled_fraction > 0:
        n_lab = max(n_lab, 1)
    lab_idx = np.sort(rng.choice(n_p, size=n_lab, replace=False)) if n_lab else np.zeros(0, int)

    return SimulatedMicrograph(
        name=name,
        image=img.astype(np.float32),
        coords=coords.reshape(-1, 2),
        labelled=coords[lab_idx].reshape(-1, 2),
        defocus_um=0.5 * (df_u + df_v),
        contaminants=cont_xy.reshape(-1, 2),
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
            "contaminant_radii": cont_r,
            "carbon": carbon,
            "config": _config_dict(cfg),
        },
    )


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


def _reference_signal_var(
    cfg: SimulationConfig, t: Template, ctf: np.ndarray, full: int, off: int
) -> float:
    """Signal variance of one particle of template ``t`` (fixed pose) under this CTF.

    Used when a micrograph has no particle, so that its noise level matches its siblings.
    """
    c = off + (cfg.size - 1) / 2
    dens = np.zeros((full, full))
    _splat(dens, c, c, t, np.eye(3))
    img = sfft.irfft2(sfft.rfft2(dens) * ctf, s=(full, full))[off : off + cfg.size, off : off + cfg.size]
    mask = _disk_mask(cfg.size, np.array([[c - off, c - off]]), cfg.diameter / 2)
    return float(img[mask].var())


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


def _config_dict(cfg: SimulationConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["defocus_range"] = [float(v) for v in cfg.defocus_range]
    return d


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


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save_simulation(
    sims: list[SimulatedMicrograph], out_dir, cfg: SimulationConfig | None = None
) -> Path:
    """Write a simulated data set under ``out_dir`` and return it as a Path.

    Layout: ``micrographs/<name>.mrc`` (float32, voxel size = pixel size),
    ``labels_true.star`` (every particle), ``labels.star`` (the labelled subset), both
    with columns rlnMicrographName (``<name>.mrc``), rlnCoordinateX, rlnCoordinateY in the
    module's pixel convention, and ``simulation.json`` (the config and a per-micrograph
    summary).  Each file is written to a temporary name and then renamed into place.
    """
    import mrcfile
    import pandas as pd
    import starfile

    out = Path(out_dir)
    (out / "micrographs").mkdir(parents=True, exist_ok=True)

    for s in sims:
        path = out / "micrographs" / f"{s.name}.mrc"
        tmp = path.with_name(f".{path.name}.tmp")
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(s.image, dtype=np.float32))
            mrc.voxel_size = s.pixel_size
        os.replace(tmp, path)

    def write_star(path: Path, which: str) -> None:
        names, xs, ys = [], [], []
        for s in sims:
            c = getattr(s, which)
            names += [f"{s.name}.mrc"] * len(c)
            xs += c[:, 0].tolist()
            ys += c[:, 1].tolist()
        df = pd.DataFrame(
            {
                "rlnMicrographName": pd.Series(names, dtype=object),
                "rlnCoordinateX": pd.Series(xs, dtype=np.float64),
                "rlnCoordinateY": pd.Series(ys, dtype=np.float64),
            }
        )
        tmp = path.with_name(f".{path.name}.tmp")
        starfile.write(df, tmp)
        os.replace(tmp, path)

    write_star(out / "labels_true.star", "coords")
    write_star(out / "labels.star", "labelled")

    if cfg is not None:
        config = _config_dict(cfg)
    else:
        config = sims[0].meta.get("config") if sims else None
    summary = {
        "config": config,
        "coordinates": "pixels, x=column, y=row, 0-based, integers at pixel centres",
        "micrographs": [
            {
                "name": s.name,
                "file": f"micrographs/{s.name}.mrc",
                "shape": list(s.image.shape),
                "n_particles": int(len(s.coords)),
                "n_labelled": int(len(s.labelled)),
                "defocus_um": float(s.defocus_um),
                "defocus_u_um": float(s.meta.get("defocus_u_um", s.defocus_um)),
                "defocus_v_um": float(s.meta.get("defocus_v_um", s.defocus_um)),
                "astig_angle_rad": float(s.meta.get("astig_angle_rad", 0.0)),
                "contaminants": np.asarray(s.contaminants).tolist(),
                "carbon": s.meta.get("carbon"),
            }
            for s in sims
        ],
    }
    path = out / "simulation.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    return out
