"""Mask-image labels -> particle centres: hand-placed disks, touching and overlapping."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import linear_sum_assignment

from cryopick.data import load_samples
from cryopick.masks import centres_from_mask, estimate_radius, component_areas, binarize, read_mask_labels
from cryopick.targets import disk_mask


def _match(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distances of the one-to-one nearest assignment (len(found) must equal len(truth))."""
    assert len(found) == len(truth), f"{len(found)} centres found, {len(truth)} placed"
    d = np.linalg.norm(found[:, None] - truth[None], axis=2)
    i, j = linear_sum_assignment(d)
    return d[i, j]


def _antialiased_mask(shape, xy, r, factor):
    """A disk mask drawn at ``factor`` x the resolution, then block-averaged (CryoPPP-like soft edges), 0..255."""
    fine = disk_mask((shape[0] * factor, shape[1] * factor), (np.asarray(xy) + 0.5) * factor - 0.5, r * factor)
    coarse = fine.reshape(shape[0], factor, shape[1], factor).mean(axis=(1, 3))
    return (coarse * 255).round().astype(np.uint8)


PLACED = np.array([[20.0, 20.0], [60.0, 22.0],  # isolated
                   [100.0, 60.0], [113.0, 60.0],  # overlapping: 1.3 R apart
                   [30.0, 100.0], [46.0, 100.0],  # touching: 1.6 R apart
                   [80.0, 110.0], [90.0, 118.0], [100.0, 110.0]])  # a cluster of three


def test_isolated_touching_and_overlapping_disks_are_split():
    mask = disk_mask((140, 140), PLACED, 10.0)
    xy, r = centres_from_mask(mask, radius=10.0)
    assert r == 10.0
    assert _match(xy, PLACED).max() < 1.5


def test_low_resolution_antialiased_mask_with_scale_and_estimated_radius():
    # a 4x smaller mask of a 560x560 micrograph, radius 40 px there (10 mask px), soft edges
    mask = _antialiased_mask((140, 140), PLACED, 10.0, factor=4)
    assert len(np.unique(mask)) > 2  # really anti-aliased
    xy, r = centres_from_mask(mask, radius=None, scale=4.0)
    assert abs(r - 40.0) < 2.0  # estimated from the isolated disks
    truth = (PLACED + 0.5) * 4 - 0.5
    assert _match(xy, truth).max() < 4.0  # within a mask pixel


def test_radius_estimate_ignores_merged_blobs():
    binary = binarize(disk_mask((140, 140), PLACED, 10.0))
    assert abs(estimate_radius(component_areas(binary)) - 10.0) < 0.5


def test_empty_mask_and_slivers():
    assert centres_from_mask(np.zeros((50, 50)), radius=5.0)[0].shape == (0, 2)
    sliver = np.zeros((50, 50))
    sliver[20:23, 5:45] = 1  # a line 3 px thick: no disk of radius 5 fits
    assert len(centres_from_mask(sliver, radius=5.0)[0]) == 0


def test_mask_directory_read_and_used_for_training_targets(tmp_path):
    mics, masks = tmp_path / "mics", tmp_path / "masks"
    mics.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (560, 560), dtype=np.uint8)).save(mics / "m1.png")
    Image.fromarray(_antialiased_mask((140, 140), PLACED, 10.0, factor=4)).save(masks / "m1.png")
    labels = read_mask_labels(masks, {"m1": (560, 560)}, radius=None)
    truth = (PLACED + 0.5) * 4 - 0.5
    assert _match(labels["m1"].xy, truth).max() < 4.0
    assert abs(labels["m1"].diameter - 80.0) < 4.0
    loaded = load_samples([str(mics)], str(masks), radius=40.0, downsample=4.0)
    (s,) = loaded.samples
    assert s.coords is not None and len(s.coords) == len(PLACED)
    assert s.mask.max() == 1.0  # painted disks at the mask radius, like coordinate labels
    assert _match(s.coords, PLACED).max() < 1.5


@pytest.mark.parametrize("aspect", [(560, 280)])
def test_mask_of_another_aspect_ratio_is_refused(tmp_path, aspect):
    from cryopick.errors import InputError

    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.zeros((140, 140), np.uint8)).save(masks / "m1.png")
    with pytest.raises(InputError, match="aspect ratio"):
        read_mask_labels(masks, {"m1": aspect}, radius=40.0)


def test_disks_a_little_smaller_or_larger_than_the_radius_are_all_found():
    # drawn disks vary in size; the radius estimate is a median, so half of them are smaller than it
    rng = np.random.default_rng(3)
    xy = np.array([[20.0 + 40 * i, 20.0 + 40 * j] for i in range(4) for j in range(4)])
    radii = rng.uniform(0.88, 1.12, len(xy)) * 10.0
    mask = np.zeros((170, 170), np.float32)
    for c, r in zip(xy, radii):
        disk_mask(mask.shape, c[None], r, out=mask)
    found, _ = centres_from_mask(mask, radius=10.0)
    assert _match(found, xy).max() < 1.5


def test_disks_cut_by_the_image_edge_are_found_and_no_sliver_is_added():
    # centres 0, 0.3 R and 0.7 R from the edges (half a disk or more inside), plus two interior disks
    edge = np.array([[0.0, 40.0], [3.0, 80.0], [60.0, 0.0], [100.0, 142.0], [145.0, 20.0]])
    interior = np.array([[50.0, 60.0], [100.0, 90.0]])
    xy = np.concatenate([edge, interior])
    mask = disk_mask((150, 150), xy, 10.0)
    found, _ = centres_from_mask(mask, radius=10.0)
    assert _match(found, xy).max() < 2.0
    corner = disk_mask((150, 150), np.array([[0.0, 0.0]]), 10.0)  # a quarter disk: under half inside
    assert len(centres_from_mask(corner, radius=10.0)[0]) == 0
