import numpy as np
import pytest

from cryopick.errors import InputError
from cryopick.preprocess import auto_downsample, downsample, normalize, to_downsampled, to_original
from cryopick.targets import IGNORE, disk_mask, particle_mask


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
