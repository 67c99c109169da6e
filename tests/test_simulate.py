"""Tests of the built-in micrograph simulator (tiny sizes, fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cryopick.errors import InputError
from cryopick.simulate import (
    SimulationConfig,
    ctf_2d,
    electron_wavelength,
    make_templates,
    particle_visibility,
    save_simulation,
    simulate,
    simulate_micrograph,
)

D = 16.0  # particle diameter used throughout, px


def small(**kw) -> SimulationConfig:
    base = dict(n=2, size=128, diameter=D, seed=3)
    base.update(kw)
    return SimulationConfig(**base)


def pairwise_min(coords: np.ndarray) -> float:
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    d[np.diag_indices(len(coords))] = np.inf
    return float(d.min())


# ---- determinism ----------------------------------------------------------------------


def test_same_seed_is_byte_identical():
    cfg = small(contaminants=1, carbon_edge=True, labelled_fraction=0.5)
    a, b = simulate(cfg), simulate(cfg)
    assert [s.name for s in a] == ["sim_0000", "sim_0001"]
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes()
        np.testing.assert_array_equal(x.coords, y.coords)
        np.testing.assert_array_equal(x.labelled, y.labelled)
        np.testing.assert_array_equal(x.contaminants, y.contaminants)
        assert x.defocus_um == y.defocus_um


def test_different_seeds_and_indices_differ():
    a = simulate(small(seed=1))
    b = simulate(small(seed=2))
    assert a[0].image.tobytes() != b[0].image.tobytes()
    assert a[0].image.tobytes() != a[1].image.tobytes()
    assert not np.array_equal(a[0].coords, a[1].coords)


def test_micrograph_i_does_not_depend_on_n():
    a = simulate(small(n=1))
    b = simulate(small(n=3))
    assert a[0].image.tobytes() == b[0].image.tobytes()


def test_simulate_micrograph_matches_simulate():
    cfg = small(n=1)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    one = simulate_micrograph(cfg, rng, "sim_0000")
    assert one.image.tobytes() == simulate(cfg)[0].image.tobytes()


# ---- geometry and labels --------------------------------------------------------------


def test_count_separation_border():
    cfg = small(n=3, n_particles=12, min_separation=1.0)
    for s in simulate(cfg):
        assert s.coords.shape == (12, 2)
        assert pairwise_min(s.coords) >= D - 1e-9
        r = D / 2
        assert (s.coords >= r).all() and (s.coords <= cfg.size - 1 - r).all()
        assert s.coords.dtype == np.float64


def test_crowding_allows_closer_particles():
    s = simulate(small(n=1, n_particles=20, min_separation=0.5, seed=5))[0]
    assert len(s.coords) == 20
    assert pairwise_min(s.coords) >= 0.5 * D - 1e-9


def test_default_count_fills_about_a_quarter():
    cfg = small(n=1, size=256)
    s = simulate(cfg)[0]
    covered = len(s.coords) * math.pi * (D / 2) ** 2 / (cfg.size - D) ** 2
    assert 0.2 < covered < 0.3


@pytest.mark.parametrize("fraction, expected", [(1.0, 10), (0.3, 3), (0.01, 1), (0.0, 0)])
def test_labelled_subset(fraction, expected):
    s = simulate(small(n=1, n_particles=10, labelled_fraction=fraction))[0]
    assert s.labelled.shape == (expected, 2)
    truth = {tuple(c) for c in s.coords}
    assert all(tuple(c) in truth for c in s.labelled)
    assert len({tuple(c) for c in s.labelled}) == expected


def test_no_particles():
    s = simulate(small(n=1, n_particles=0))[0]
    assert s.coords.shape == (0, 2) and s.labelled.shape == (0, 2)
    assert np.isfinite(s.image).all() and abs(float(s.image.std()) - 1) < 1e-3


def test_particles_avoid_contaminants_and_carbon():
    cfg = small(n=3, size=192, contaminants=2, carbon_edge=True)
    for s in simulate(cfg):
        assert s.contaminants.shape == (2, 2)
        radii = s.meta["contaminant_radii"]
        for c, r in zip(s.contaminants, radii):
            if len(s.coords):
                assert np.linalg.norm(s.coords - c, axis=1).min() >= 1.5 * r + D / 2
        carbon = s.meta["carbon"]
        dist = np.linalg.norm(s.coords - np.asarray(carbon["centre_xy"]), axis=1)
        assert (dist <= carbon["radius"] - D / 2).all()


# ---- image ----------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"contaminants": 2, "carbon_edge": True}])
def test_image_normalised(extra):
    for s in simulate(small(**extra)):
        assert s.image.dtype == np.float32 and s.image.shape == (128, 128)
        assert np.isfinite(s.image).all()
        assert abs(float(s.image.mean())) < 1e-4
        assert abs(float(s.image.std()) - 1) < 1e-3
        lo, hi = small().defocus_range
        assert lo <= s.defocus_um <= hi


def test_snr_knob():
    """Low-passed particle-minus-background contrast grows strongly with the SNR."""

    def contrast(snr: float) -> float:
        vals = []
        for s in simulate(small(n=3, snr=snr, ice_gradient=0.0)):
            lp = gaussian_filter(s.image.astype(np.float64), D / 4)
            yy, xx = np.mgrid[0 : s.image.shape[0], 0 : s.image.shape[1]]
            d = np.full(s.image.shape, np.inf)
            for x, y in s.coords:
                d = np.minimum(d, np.hypot(xx - x, yy - y))
            inside, outside = d <= D / 4, d > D
            vals.append(lp[outside].mean() - lp[inside].mean())  # > 0: particles darker
        return float(np.mean(vals))

    lo, hi = contrast(0.05), contrast(10.0)
    assert lo > 0  # dark particles, as documented
    assert hi > 3 * lo
    # The band-pass visibility helper agrees.
    v_lo = particle_visibility(simulate(small(n=1, snr=0.05))[0], D)
    v_hi = particle_visibility(simulate(small(n=1, snr=10.0))[0], D)
    assert v_hi["cnr"] > v_lo["cnr"] > 0 and v_hi["auc"] > 0.9


def test_noise_level_follows_snr():
    s = simulate(small(n=1, snr=0.25))[0]
    assert s.meta["signal_std"] / s.meta["noise_std"] == pytest.approx(0.5)


# ---- CTF ------------------------------------------------------------------------------


def test_wavelength_300kv():
    assert electron_wavelength(300) == pytest.approx(0.01969, abs=1e-5)


def test_ctf_convention_and_bounds():
    ctf = ctf_2d((64, 64), 1.5, 1.5, 1.5, 0.0, 300, 2.7, 0.07, bfactor=0.0)
    assert ctf.shape == (64, 64)
    assert ctf[0, 0] == pytest.approx(-0.07)
    assert np.abs(ctf).max() <= 1 + 1e-12
    assert ctf[0, 1] < 0 and ctf[1, 0] < 0  # first lobe negative for underfocus
    assert ctf.min() < -0.9 and ctf.max() > 0.9  # oscillates
    # No astigmatism: isotropic, so the square grid is symmetric under transposition.
    np.testing.assert_allclose(ctf, ctf.T, atol=1e-12)
    # The B-factor envelope only damps.
    damped = ctf_2d((64, 64), 1.5, 1.5, 1.5, 0.0, 300, 2.7, 0.07, bfactor=200.0)
    assert (np.abs(damped) <= np.abs(ctf) + 1e-12).all()


def test_ctf_half_plane_matches_full():
    full = ctf_2d((48, 40), 1.2, 2.0, 1.6, 0.4, 200, 2.0, 0.1)
    half = ctf_2d((48, 40), 1.2, 2.0, 1.6, 0.4, 200, 2.0, 0.1, half=True)
    assert half.shape == (48, 21)
    np.testing.assert_allclose(half[:, :20], full[:, :20])
    # Nyquist column: rfft uses kx = +1/2, fft kx = -1/2; the CTF is even, CTF(k) = CTF(-k).
    # (Row 24 is ky = -1/2 whose mirror +1/2 is not on the grid.)
    rows = np.r_[0:24, 25:48]
    np.testing.assert_allclose(half[rows, 20], full[(-rows) % 48, 20])


def test_ctf_astigmatism_is_anisotropic():
    ctf = ctf_2d((128, 128), 1.5, 2.0, 1.0, 0.0, 300, 2.7, 0.07, bfactor=0.0)
    assert np.abs(ctf - ctf.T).max() > 0.5
    # Rotating the astigmatism by 90 degrees swaps the axes.
    rot = ctf_2d((128, 128), 1.5, 2.0, 1.0, math.pi / 2, 300, 2.7, 0.07, bfactor=0.0)
    np.testing.assert_allclose(rot, ctf.T, atol=1e-9)


def test_ctf_rejects_bad_arguments():
    with pytest.raises(InputError, match="amplitude_contrast"):
        ctf_2d((8, 8), 1.0, 1.0, 1.0, 0.0, 300, 2.7, 1.5)
    with pytest.raises(InputError, match="pixel_size"):
        ctf_2d((8, 8), 0.0, 1.0, 1.0, 0.0, 300, 2.7, 0.1)


# ---- templates ------------------------------------------------------------------------


def test_templates_are_varied_and_centred():
    cfg = small(n_shapes=4)
    ts = make_templates(cfg)
    assert [t.kind for t in ts] == ["globular", "elongated", "multilobed", "globular"]
    for t in ts:
        com = (t.masses[:, None] * t.centres).sum(0) / t.masses.sum()
        np.testing.assert_allclose(com, 0, atol=1e-9)
        assert D / 2 * (1 - cfg.size_jitter) - 1e-9 <= t.radius <= D / 2 * (1 + cfg.size_jitter) + 1e-9
    assert len({round(t.radius, 6) for t in ts}) > 1


# ---- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("n", 0),
        ("size", 16),
        ("diameter", 2.0),
        ("diameter", 64.0),
        ("labelled_fraction", 1.5),
        ("labelled_fraction", -0.1),
        ("snr", 0.0),
        ("snr", float("nan")),
        ("min_separation", -1.0),
        ("n_particles", -3),
        ("n_particles", 10_000),
        ("defocus_range", (2.0, 1.0)),
        ("amplitude_contrast", 1.0),
        ("n_shapes", 0),
        ("contaminants", -1),
        ("n", 2.5),
    ],
)
def test_invalid_config_raises(option, value):
    with pytest.raises(InputError, match=option):
        simulate(small(**{option: value}))


# ---- saving ---------------------------------------------------------------------------


def test_save_simulation(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    starfile = pytest.importorskip("starfile")
    cfg = small(n=2, labelled_fraction=0.5)
    sims = simulate(cfg)
    out = save_simulation(sims, tmp_path / "sim", cfg)
    for s in sims:
        with mrcfile.open(out / "micrographs" / f"{s.name}.mrc") as m:
            np.testing.assert_array_equal(m.data, s.image)
            assert float(m.voxel_size.x) == pytest.approx(cfg.pixel_size)
    true = starfile.read(out / "labels_true.star")
    lab = starfile.read(out / "labels.star")
    assert len(true) == sum(len(s.coords) for s in sims)
    assert len(lab) == sum(len(s.labelled) for s in sims)
    assert set(true["rlnMicrographName"]) == {"sim_0000.mrc", "sim_0001.mrc"}
    first = true[true["rlnMicrographName"] == "sim_0000.mrc"]
    np.testing.assert_allclose(first[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(), sims[0].coords, atol=1e-5)
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["config"]["seed"] == cfg.seed and len(meta["micrographs"]) == 2
    assert not list(out.rglob("*.tmp"))


def test_shortfall_warns():
    cfg = small(n=1, n_particles=43)  # at the random-packing capacity of a 128 px image
    with pytest.warns(UserWarning, match="placed"):
        s = simulate(cfg)[0]
    assert 0 < len(s.coords) < 43
    assert pairwise_min(s.coords) >= D - 1e-9
