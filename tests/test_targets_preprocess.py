import numpy as np
import pytest

from cryopick.errors import InputError
from cryopick.preprocess import auto_downsample, downsample, normalize, to_downsampled, to_original
from scipy import ndimage

from cryopick.targets import IGNORE, disk_mask, particle_mask, split_touching


def test_disk_mask_hand_placed():
    m = disk_mask((9, 9), np.array([[4.0, 4.0]]), 1.0)
    expected = np.zeros((9, 9), np.float32)
    expected[4, 3:6] = 1
    expected[3:6, 4] = 1
    np.testing.assert_array_equal(m, expected)


def test_disk_mask_area_and_x_is_column():
    m = disk_mask((64, 80), np.array([[60.0, 10.0]]), 5.0)
    ys, xs = np.nonzero(m)
    assert xs.mean() == pytest.approx(60) and ys.mean() == pytest.approx(10)
    assert m.sum() == pytest.approx(np.pi * 25, rel=0.15)


def test_disk_mask_clips_at_border():
    m = disk_mask((10, 10), np.array([[0.0, 0.0], [30.0, 30.0]]), 3.0)
    assert m[0, 0] == 1 and m.sum() < np.pi * 9


def test_particle_mask_ignore_ring():
    m = particle_mask((32, 32), np.array([[16.0, 16.0]]), 4.0, ignore_ring=0.5)
    assert m[16, 16] == 1 and m[16, 16 + 5] == IGNORE and m[16, 16 + 7] == 0


def test_split_touching_cuts_a_line_on_the_bisector_of_overlapping_disks():
    xy = np.array([[10.0, 10.0], [17.0, 10.0], [40.0, 10.0]])  # two overlapping disks (7 px apart, radius 5), one alone
    whole = particle_mask((21, 50), xy, 5)
    split = particle_mask((21, 50), xy, 5, split=0.4)  # gap 2 px: |d1 - d2| < 2 -> x in (12.5, 14.5)
    assert ndimage.label(whole > 0)[1] == 2 and ndimage.label(split > 0)[1] == 3
    cut = (whole > 0) & (split == 0)
    assert set(np.nonzero(cut[10])[0]) == {13, 14}  # on the axis: |2x - 27| < 2 around the bisector x = 13.5
    assert set(np.nonzero(cut)[1]) == {12, 13, 14, 15}  # off the axis the band |d1 - d2| < gap widens
    assert np.array_equal(split[:, 30:], whole[:, 30:])  # the lone particle is untouched
    assert split[10, 10] == 1 and split[10, 17] == 1  # both centres stay particle


def test_split_touching_leaves_ignored_pixels_and_far_pairs_alone():
    mask = np.full((21, 40), IGNORE, np.float32)
    xy = np.array([[10.0, 10.0], [19.0, 10.0]])  # 9 px apart: the disks (radius 5) just overlap
    disk_mask(mask.shape, xy, 5, 1.0, out=mask)
    before = mask.copy()
    split_touching(mask, xy, 5, 2.0)
    assert (mask[before == IGNORE] == IGNORE).all()  # only particle pixels turn to background
    assert set(np.nonzero(before[10] != mask[10])[0]) == {14, 15}  # around the bisector x = 14.5
    far = before.copy()
    split_touching(far, np.array([[5.0, 10.0], [30.0, 10.0]]), 5, 2.0)
    assert np.array_equal(far, before)


def test_auto_downsample_brings_particles_to_20_to_40_px():
    for d in (20, 32, 33, 36, 40, 41, 60, 64, 108, 200, 400):
        f = auto_downsample(d)
        assert d / f <= 40 and (d / f > 20 or f == 1), (d, f)
        assert f == 1 or d / (f - 1) > 40  # the smallest such factor
    assert [auto_downsample(d) for d in (32, 35.8, 59.6, 108)] == [1, 1, 2, 3]


def test_coordinates_round_trip_through_downsampling():
    xy = np.array([[0.0, 0.0], [101.3, 57.9]])
    np.testing.assert_allclose(to_original(to_downsampled(xy, 4), 4), xy)
    # a 4x4 block's centre maps to the binned pixel centre
    np.testing.assert_allclose(to_downsampled(np.array([[1.5, 5.5]]), 4), [[0.0, 1.0]])


def test_downsample_bins():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(downsample(img, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert downsample(np.ones((10, 10)), 1.5).shape == (7, 7)
    with pytest.raises(InputError):
        downsample(img, 0)


def test_normalize_methods(rng):
    img = rng.normal(5, 3, (64, 64)).astype(np.float32)
    img[0, 0] = 1e6  # an outlier does not set the scale of the robust method
    r = normalize(img, "robust")
    assert abs(np.median(r)) < 0.1 and 0.7 < r[1:].std() < 1.3 and r.max() <= 6
    z = normalize(img, "zscore")
    assert z.mean() == pytest.approx(0, abs=1e-4)
    with pytest.raises(InputError):
        normalize(img, "minmax")


def test_pu_prior_from_expected_count():
    from cryopick.targets import pu_prior

    m = np.zeros((100, 100), np.float32)
    m[:10, :10] = 1  # 100 labelled px
    # 10 particles of radius 5: 785.4 px expected, 685.4 of them unlabelled, over 9900 unlabelled px
    assert pu_prior([m], 10, 5.0) == pytest.approx((10 * np.pi * 25 - 100) / 9900)
    assert pu_prior([m], 0.1, 5.0) == pytest.approx(1e-3)  # never below a floor


def test_split_touching_reaches_the_training_masks(tmp_path):
    from cryopick.data import load_samples
    from cryopick.io import write_labels
    from cryopick.io.micrographs import write_mrc
    from cryopick.io.particles import Particles

    rng = np.random.default_rng(0)
    write_mrc(tmp_path / "m.mrc", rng.normal(size=(64, 64)).astype(np.float32))
    write_labels({"m": Particles(np.array([[20.0, 30.0], [27.0, 30.0], [50.0, 50.0]]))}, tmp_path / "p.star", "star")
    kw = dict(radius=8.0, downsample=1.0)
    whole = load_samples([str(tmp_path / "m.mrc")], str(tmp_path / "p.star"), **kw)
    split = load_samples([str(tmp_path / "m.mrc")], str(tmp_path / "p.star"), split_touching=0.5, **kw)
    assert split.prep.split_touching == 0.5 and whole.prep.split_touching == 0.0
    a, b = whole.samples[0].mask, split.samples[0].mask
    assert ndimage.label(a > 0)[1] == 2 and ndimage.label(b > 0)[1] == 3  # the close pair is cut apart
