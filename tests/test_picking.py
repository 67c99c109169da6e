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
