"""Picker on hand-made maps: coordinates through tiling and downsampling, ensembles, thresholds."""

import numpy as np
import pytest
import torch
from torch import nn

from cryopick.config import PickConfig
from cryopick.data import Preprocessing
from cryopick.picking import Picker


class Identity(nn.Module):
    """A stand-in network whose logits are a scaled copy of its input."""

    def __init__(self, gain: float = 4.0):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return self.gain * (x - 1.0)


def bumps(shape, xy, sigma=3.0, height=4.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float32)
    for x, y in xy:
        img += height * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return img


@pytest.mark.parametrize("factor", [1, 2])
def test_particle_on_a_tile_seam_is_found_once_at_the_right_place(factor):
    # tiles of 64 px overlapping by 16: windows start at 0, 48, 96; x = 56 lies in the seam of the first two
    truth = np.array([[56.0, 80.0], [20.0, 20.0], [130.0, 140.0]]) * factor
    image = bumps((160 * factor, 160 * factor), truth, sigma=3.0 * factor)
    prep = Preprocessing(downsample=factor, normalize="none", radius=6.0 * factor)
    picker = Picker([Identity()], prep, PickConfig(tile_size=64, overlap=16, threshold=0.5))
    picks = picker.pick_image(image, "m")
    assert len(picks.xy) == 3
    order = np.argsort(picks.xy[:, 0])
    np.testing.assert_allclose(picks.xy[order], truth[np.argsort(truth[:, 0])], atol=0.6 * factor)


def test_tiled_map_equals_whole_map_for_a_pointwise_model():
    image = np.random.default_rng(0).normal(size=(150, 130)).astype(np.float32)
    prep = Preprocessing(downsample=1, normalize="none", radius=4.0)
    tiled = Picker([Identity()], prep, PickConfig(tile_size=64, overlap=16)).probability(image)
    whole = Picker([Identity()], prep, PickConfig(tile_size=256, overlap=0)).probability(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_ensemble_averages_probabilities():
    image = bumps((64, 64), [[32, 32]])
    prep = Preprocessing(downsample=1, normalize="none", radius=4.0)
    a, b = Identity(2.0), Identity(6.0)
    pa = Picker([a], prep).probability(image)
    pb = Picker([b], prep).probability(image)
    pab = Picker([a, b], prep).probability(image)
    np.testing.assert_allclose(pab, (pa + pb) / 2, atol=1e-6)


def test_threshold_and_min_distance():
    truth = [[20, 20], [30, 20], [50, 50]]  # the first two are 10 px apart
    image = bumps((72, 72), truth, sigma=2.0)
    prep = Preprocessing(downsample=1, normalize="none", radius=6.0)
    close = Picker([Identity()], prep, PickConfig(threshold=0.5, min_distance=12)).pick_image(image, "m")
    assert len(close.xy) == 2  # min distance 12 > 10: one of the pair is suppressed
    apart = Picker([Identity()], prep, PickConfig(threshold=0.5, min_distance=8)).pick_image(image, "m")
    assert len(apart.xy) == 3
    none = Picker([Identity()], prep, PickConfig(threshold=0.999)).pick_image(image, "m")
    assert len(none.xy) == 0 and none.xy.shape == (0, 2)


class Corner(nn.Module):
    """Not rotation-equivariant on purpose: adds a ramp that grows to the right."""

    def forward(self, x):
        ramp = torch.linspace(-1, 1, x.shape[-1]).view(1, 1, 1, -1)
        return 4 * (x - 1.0) + ramp


def test_test_time_augmentation_averages_the_eight_symmetries():
    from cryopick.inference import predict_probability

    rng = np.random.default_rng(0)
    img = rng.normal(size=(64, 64)).astype(np.float32)
    plain = predict_probability(Corner(), img, tile=64)
    tta = predict_probability(Corner(), img, tile=64, tta=True)
    assert np.abs(plain - tta).max() > 1e-3  # the ramp is averaged out
    # the D4 average is equivariant: rotating or flipping the input rotates or flips the map
    for k in (1, 2, 3):
        rotated = predict_probability(Corner(), np.rot90(img, k).copy(), tile=64, tta=True)
        np.testing.assert_allclose(rotated, np.rot90(tta, k), atol=1e-6)
    flipped = predict_probability(Corner(), img[:, ::-1].copy(), tile=64, tta=True)
    np.testing.assert_allclose(flipped, tta[:, ::-1], atol=1e-6)
    # and it equals the mean of the eight maps computed by hand
    maps = []
    for f in (False, True):
        im = img[:, ::-1] if f else img
        for k in range(4):
            m = np.rot90(predict_probability(Corner(), np.rot90(im, k).copy(), tile=64), -k)
            maps.append(m[:, ::-1] if f else m)
    np.testing.assert_allclose(tta, np.mean(maps, axis=0), atol=1e-6)


def test_mean_score_ranks_a_wide_particle_above_a_narrow_spike():
    shape = (96, 96)
    prob = bumps(shape, [[30.0, 30.0]], sigma=5.0, height=0.6) + bumps(shape, [[70.0, 70.0]], sigma=0.8, height=1.0)
    prep = Preprocessing(downsample=1, normalize="none", radius=8.0, mask_radius_scale=0.6)
    first = lambda p: tuple(np.round(p[0][0]))  # noqa: E731
    peak = Picker([Identity()], prep, PickConfig(score="peak", smooth=0)).peaks(prob)
    mean = Picker([Identity()], prep, PickConfig(score="mean", smooth=0)).peaks(prob)
    assert first(peak) == (70.0, 70.0)  # the spike is higher at its peak
    assert first(mean) == (30.0, 30.0)  # but the wide particle fills its disk
    assert len(peak[0]) == len(mean[0]) == 2


def test_validation_gives_particle_metrics_with_coordinates():
    from cryopick.data import Sample
    from cryopick.train import validate

    truth = np.array([[20.0, 20.0], [60.0, 30.0], [40.0, 70.0]])
    image = bumps((96, 96), truth, sigma=3.0)
    mask = (bumps((96, 96), truth, sigma=3.0) > 2).astype(np.float32)
    prep = Preprocessing(downsample=1, normalize="none", radius=6.0)
    s = Sample("m", image, mask, truth, (96, 96))
    pixel, particles = validate(Identity(), [s], "cpu", prep, tile=64)
    assert particles is not None and particles.ap == pytest.approx(1.0)
    assert particles.n_truth == 3 and pixel.f1 > 0.5
    no_coords = Sample("m", image, mask, None, (96, 96))
    assert validate(Identity(), [no_coords], "cpu", prep, tile=64)[1] is None
