"""Self-training through the real `cryopick selftrain` path, on a tiny simulated set."""

import json

import numpy as np
import pytest

import cryopick.relabel as relabel_mod
from cryopick.cli import main
from cryopick.io import read_labels
from cryopick.simulate import SimulationConfig
from cryopick.splits import simulated_splits
from cryopick.targets import disk_mask

TINY = ["--base-features", "4", "--patch-size", "64", "--patches-per-epoch", "8", "--batch-size", "4",
        "--device", "cpu", "--epochs", "1", "--iterations", "1", "--retrain-epochs", "1"]
RING = 0.5


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    return simulated_splits(root, SimulationConfig(size=96, diameter=16, snr=0.5, labelled_fraction=0.5, seed=1), 2, 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["particles", "pixels"])
def test_selftrain_protects_the_ring_at_the_particle_radius(sim, tmp_path, monkeypatch, mode):
    calls = []
    real = relabel_mod.combine_labels

    def spy(pseudo, original, coords=None, radius=0.0, protect_ring=0.5):
        out = real(pseudo, original, coords, radius, protect_ring)
        calls.append((radius, protect_ring, coords, out))
        return out

    monkeypatch.setattr(relabel_mod, "combine_labels", spy)
    out = tmp_path / "st"
    rc = main(["selftrain", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--val-images",
               str(sim.val_mics), "--val-labels", str(sim.val_labels), "--radius", "8", "--out", str(out),
               "--pseudo-labels", mode, "--particles-per-micrograph", str(sim.particles_per_micrograph), *TINY])
    assert rc == 0
    s = json.loads((out / "training_summary.json").read_text())
    downsample = s["config"]["data"]["downsample"]
    assert calls and all(r == pytest.approx(8 / downsample) for r, *_ in calls)  # not the 0.6 x target disk
    assert all(ring == RING for _, ring, *_ in calls)
    for radius, ring, coords, mask in calls:  # the relabelled masks: no background inside radius x (1 + ring)
        if coords is not None and len(coords):
            zone = disk_mask(mask.shape, coords, radius * (1 + ring)) > 0
            assert not (mask[zone] == 0).any()
    assert s["shipped"] in ("baseline", "iteration 1") and s["final_particles"]["f1"] is not None


@pytest.mark.slow
def test_selftrain_splits_touching_labelled_and_pseudo_particles(sim, tmp_path, monkeypatch):
    calls = []
    real = relabel_mod.split_touching

    def spy(mask, xy, radius, gap):
        calls.append((np.array(xy), radius, gap))
        return real(mask, xy, radius, gap)

    monkeypatch.setattr(relabel_mod, "split_touching", spy)
    out = tmp_path / "st"
    rc = main(["selftrain", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--val-images",
               str(sim.val_mics), "--val-labels", str(sim.val_labels), "--radius", "8", "--out", str(out),
               "--split-touching", "0.5", "--particles-per-micrograph", str(sim.particles_per_micrograph), *TINY])
    assert rc == 0
    s = json.loads((out / "training_summary.json").read_text())
    target = 8 * s["config"]["data"]["mask_radius_scale"] / s["config"]["data"]["downsample"]
    assert s["config"]["data"]["split_touching"] == 0.5
    assert len(calls) == 2  # each training micrograph, once per iteration
    n_labelled = sum(len(v) for v in read_labels(sim.train_labels).values())
    assert sum(len(xy) for xy, *_ in calls) > n_labelled  # the labelled centres and the pseudo-particles
    assert all(r == pytest.approx(target) and g == pytest.approx(0.5 * target) for _, r, g in calls)
