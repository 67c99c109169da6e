"""Simulation parameters (:class:`SimulationConfig`) and one simulated micrograph with its truth."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from cryopick.errors import InputError

# Coverage of random sequential adsorption of hard disks at jamming (~0.547).
_RSA_JAMMING = 0.547
# Target area fraction covered by particle disks when ``n_particles`` is None.
_DEFAULT_AREA_FRACTION = 0.25


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



def _config_dict(cfg: SimulationConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["defocus_range"] = [float(v) for v in cfg.defocus_range]
    return d
