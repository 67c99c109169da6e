"""Tests of cryopick.peaks: hand-placed peaks, edge cases, and hypothesis invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage as ndi

from cryopick.errors import InputError
from cryopick.peaks import _disk_max_filter, _local_max_mask, disk_offsets, find_peaks, nms_points


def bumps(shape, centers, sigma=2.0, amps=None):
    """Max-composited isotropic Gaussians; centers are (x, y)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros(shape)
    amps = [1.0] * len(centers) if amps is None else amps
    for (cx, cy), a in zip(centers, amps):
        out = np.maximum(out, a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    return out


def as_set(xy):
    return {(float(x), float(y)) for x, y in xy}


def brute_local_max(a, r, thr):
    """Reference: pixels >= every pixel within the closed disk of r, and >= thr. (x, y) set."""
    h, w = a.shape
    dy, dx = disk_offsets(r)
    out = set()
    for y in range(h):
        for x in range(w):
            v = a[y, x]
            if v < thr:
                continue
            yy, xx = y + dy, x + dx
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            if (a[yy[ok], xx[ok]] <= v).all():
                out.add((float(x), float(y)))
    return out


# ----------------------------------------------------------------------------- hand-placed


def test_gaussian_bumps_found_exactly():
    centers = [(10, 12), (40, 20), (25, 50), (55, 55), (100, 100), (80, 30)]
    amps = [0.9, 0.8, 0.95, 0.7, 0.85, 0.6]
    prob = bumps((128, 128), centers, sigma=2.5, amps=amps)
    xy, scores = find_peaks(prob, min_distance=8, threshold=0.3)
    assert as_set(xy) == as_set(np.array(centers, float))
    # sorted by descending score; scores are the map values at the peaks
    order = np.argsort(amps)[::-1]
    np.testing.assert_array_equal(xy, np.array(centers, float)[order])
    np.testing.assert_allclose(scores, np.array(amps)[order])
    assert xy.dtype == np.float64 and scores.dtype == np.float64


def test_64x64_map_float32():
    centers = [(16, 16), (48, 16), (32, 48)]
    prob = bumps((64, 64), centers, sigma=3).astype(np.float32)
    xy, scores = find_peaks(prob, min_distance=10, threshold=0.5)
    assert as_set(xy) == as_set(np.array(centers, float))
    assert np.all(scores == 1.0)


def test_two_bumps_closer_than_min_distance_keeps_higher():
    prob = bumps((64, 64), [(20, 30), (26, 30)], sigma=2, amps=[0.9, 0.7])
    xy, scores = find_peaks(prob, min_distance=10, threshold=0.1)
    np.testing.assert_array_equal(xy, [[20.0, 30.0]])
    np.testing.assert_allclose(scores, [0.9])


def test_two_bumps_at_min_distance_plus_one_both_kept():
    md = 8
    prob = bumps((64, 64), [(20, 30), (20 + md + 1, 30)], sigma=1.5, amps=[0.8, 0.8])
    xy, _ = find_peaks(prob, min_distance=md, threshold=0.1)
    assert as_set(xy) == {(20.0, 30.0), (29.0, 30.0)}
    # diagonal separation sqrt(6**2 + 7**2) = 9.22 > 8: also both kept
    prob = bumps((64, 64), [(20, 20), (26, 27)], sigma=1.5, amps=[0.8, 0.7])
    xy, _ = find_peaks(prob, min_distance=md, threshold=0.1)
    assert as_set(xy) == {(20.0, 20.0), (26.0, 27.0)}


def test_exactly_min_distance_semantics():
    # Equal heights exactly min_distance apart: both kept (peaks must not be *closer*).
    prob = np.zeros((20, 20))
    prob[10, 5] = prob[10, 11] = 0.9
    xy, _ = find_peaks(prob, min_distance=6, threshold=0.1)
    assert as_set(xy) == {(5.0, 10.0), (11.0, 10.0)}
    # Unequal heights exactly min_distance apart: the lower is inside the closed disk of the
    # higher, so it is not a local maximum.
    prob[10, 11] = 0.8
    xy, _ = find_peaks(prob, min_distance=6, threshold=0.1)
    assert as_set(xy) == {(5.0, 10.0)}


def test_equal_isolated_maxima_closer_than_min_distance_tie_broken_by_raster_order():
    prob = np.zeros((20, 20))
    prob[10, 5] = prob[10, 8] = 0.9  # not connected, equal, 3 px apart
    xy, _ = find_peaks(prob, min_distance=6, threshold=0.1)
    np.testing.assert_array_equal(xy, [[5.0, 10.0]])


def test_plateau_gives_one_peak_at_centroid():
    prob = np.zeros((40, 40))
    prob[10:13, 20:24] = 0.9  # rows 10..12, cols 20..23
    xy, scores = find_peaks(prob, min_distance=5, threshold=0.5)
    np.testing.assert_allclose(xy, [[21.5, 11.0]])
    np.testing.assert_allclose(scores, [0.9])
    # saturated region larger than min_distance: still one peak
    prob = np.zeros((60, 60))
    prob[10:40, 15:35] = 1.0
    xy, _ = find_peaks(prob, min_distance=3, threshold=0.5)
    np.testing.assert_allclose(xy, [[24.5, 24.5]])


def test_threshold_honoured():
    prob = bumps((64, 64), [(10, 10), (40, 40), (50, 15)], sigma=2, amps=[0.9, 0.45, 0.5])
    xy, scores = find_peaks(prob, min_distance=5, threshold=0.5)
    assert as_set(xy) == {(10.0, 10.0), (50.0, 15.0)}
    assert np.all(scores >= 0.5)
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.95)
    assert xy.shape == (0, 2)


def test_mean_score_ranks_broad_bump_above_hot_pixel():
    prob = bumps((64, 64), [(40, 40)], sigma=4, amps=[0.8])
    prob[10, 10] = 1.0
    xy, scores = find_peaks(prob, min_distance=5, threshold=0.0, score="peak")
    np.testing.assert_array_equal(xy[:2], [[10.0, 10.0], [40.0, 40.0]])
    xy, scores = find_peaks(prob, min_distance=5, threshold=0.0, score="mean", radius=3)
    np.testing.assert_array_equal(xy[0], [40.0, 40.0])
    hot = np.flatnonzero((xy == [10.0, 10.0]).all(axis=1))
    assert hot.size == 1 and hot[0] > 0
    # the hot pixel's mean is 1 / (number of pixels in a radius-3 disk) = 1/29 (+ tiny bump tail)
    assert scores[hot[0]] == pytest.approx(1 / 29, abs=1e-3)
    # reference mean for the bump: plain average over the disk
    dy, dx = disk_offsets(3)
    assert scores[0] == pytest.approx(prob[40 + dy, 40 + dx].mean())


def test_mean_score_at_border_uses_in_image_pixels():
    prob = np.zeros((20, 20))
    prob[0, 0] = 1.0
    # threshold > 0: the zero background is itself a plateau of score 0 (>= a zero threshold)
    xy, scores = find_peaks(prob, min_distance=3, threshold=0.01, score="mean", radius=2)
    np.testing.assert_array_equal(xy, [[0.0, 0.0]])
    # in-image part of a radius-2 disk at a corner: (dx, dy) >= 0 with dx^2 + dy^2 <= 4 -> 6 px
    np.testing.assert_allclose(scores, [1 / 6])


def brute_disk_mean(a, x, y, r):
    dy, dx = disk_offsets(r)
    yy, xx = int(y) + dy, int(x) + dx
    ok = (yy >= 0) & (yy < a.shape[0]) & (xx >= 0) & (xx < a.shape[1])
    return a[yy[ok], xx[ok]].mean()


@pytest.mark.parametrize("md", [0.0, 4.0])  # 0: every pixel is a peak -> whole-map FFT path
def test_mean_score_paths_match_brute_force(md):
    rng = np.random.default_rng(7)
    a = rng.random((23, 31))
    xy, scores = find_peaks(a, min_distance=md, score="mean", radius=2.5)
    assert len(xy) > 0
    ref = [brute_disk_mean(a, x, y, 2.5) for x, y in xy]
    np.testing.assert_allclose(scores, ref, rtol=1e-9, atol=1e-12)


def test_mean_score_threshold_applies_to_mean():
    prob = np.zeros((30, 30))
    prob[15, 15] = 1.0
    xy, _ = find_peaks(prob, min_distance=3, threshold=0.5, score="mean", radius=2)
    assert xy.shape == (0, 2)  # peak value 1.0 but mean 1/13


def test_empty_and_degenerate_maps():
    for prob, kw in [
        (np.zeros((32, 32)), {"threshold": 0.5}),
        (np.zeros((0, 0)), {}),
        (np.zeros((0, 10)), {}),
        (np.full((16, 16), 0.2), {"threshold": 0.3}),
    ]:
        xy, scores = find_peaks(prob, min_distance=4, **kw)
        assert xy.shape == (0, 2) and scores.shape == (0,)
        assert xy.dtype == np.float64 and scores.dtype == np.float64


def test_flat_map_is_one_plateau():
    xy, scores = find_peaks(np.zeros((9, 15)), min_distance=2, threshold=0.0)
    np.testing.assert_allclose(xy, [[7.0, 4.0]])
    np.testing.assert_allclose(scores, [0.0])


def test_min_area_removes_lone_hot_pixel():
    prob = bumps((64, 64), [(40, 40)], sigma=3, amps=[0.9])
    prob[10, 10] = 1.0
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.0)
    assert (10.0, 10.0) in as_set(xy) and (40.0, 40.0) in as_set(xy)
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.0, min_area=5)
    np.testing.assert_array_equal(xy, [[40.0, 40.0]])  # blob >= 0.5 has ~33 px, the hot pixel 1
    # with a threshold the blob is taken at that threshold: 0.9 exp(-r^2 / 18) >= 0.85 needs
    # r^2 <= 1.03, i.e. the centre and its 4 neighbours: area 5
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.85, min_area=5)
    np.testing.assert_array_equal(xy, [[40.0, 40.0]])
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.85, min_area=6)
    assert xy.shape == (0, 2)


def test_exclude_border():
    prob = bumps((64, 64), [(2, 30), (30, 30), (61, 5)], sigma=1.5)
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.5)
    assert len(xy) == 3
    xy, _ = find_peaks(prob, min_distance=5, threshold=0.5, exclude_border=3)
    np.testing.assert_array_equal(xy, [[30.0, 30.0]])


def test_small_min_distance():
    prob = np.zeros((5, 5))
    prob[1, 1] = 0.5
    prob[1, 2] = 0.4
    prob[3, 3] = 0.6
    # min_distance 1: 4-neighbourhood maxima
    xy, _ = find_peaks(prob, min_distance=1, threshold=0.3)
    np.testing.assert_array_equal(xy, [[3.0, 3.0], [1.0, 1.0]])
    # min_distance 0: no suppression at all
    xy, scores = find_peaks(prob, min_distance=0, threshold=0.3)
    np.testing.assert_array_equal(xy, [[3.0, 3.0], [1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(scores, [0.6, 0.5, 0.4])


def test_invalid_inputs():
    with pytest.raises(InputError):
        find_peaks(np.zeros((4, 4, 4)), 3)
    with pytest.raises(InputError):
        find_peaks(np.full((4, 4), np.nan), 3)
    with pytest.raises(InputError):
        find_peaks(np.zeros((4, 4)), 3, score="max")
    with pytest.raises(InputError):
        find_peaks(np.zeros((4, 4)), -1)
    with pytest.raises(InputError):
        nms_points(np.zeros((3, 3)), np.zeros(3), 1)


def test_integer_and_bool_maps_accepted():
    m = np.zeros((20, 20), dtype=np.uint8)
    m[5, 5] = 3
    xy, scores = find_peaks(m, 3, threshold=1)
    np.testing.assert_array_equal(xy, [[5.0, 5.0]])
    np.testing.assert_array_equal(scores, [3.0])


# ----------------------------------------------------------------------------- internals


@pytest.mark.parametrize("r", [1.0, 1.5, 2.0, 2.9, 5.0, 7.3])
def test_disk_max_filter_matches_footprint_filter(r):
    rng = np.random.default_rng(int(r * 10))
    a = rng.integers(0, 4, size=(37, 23)).astype(np.float64)
    dy, dx = disk_offsets(r)
    rr = int(np.abs(dy).max())
    fp = np.zeros((2 * rr + 1, 2 * rr + 1), dtype=bool)
    fp[dy + rr, dx + rr] = True
    ref = ndi.maximum_filter(a, footprint=fp, mode="constant", cval=-np.inf)
    np.testing.assert_array_equal(_disk_max_filter(a, r), ref)
    # the candidate mask (gather path or filter path) equals the exact definition
    np.testing.assert_array_equal(_local_max_mask(a, r, np.ones(a.shape, bool)), a == ref)
    b = rng.random((41, 29))
    ref_b = ndi.maximum_filter(b, footprint=fp, mode="constant", cval=-np.inf)
    np.testing.assert_array_equal(_local_max_mask(b, r, np.ones(b.shape, bool)), b == ref_b)


def test_both_candidate_paths_are_exercised(monkeypatch):
    import cryopick.peaks as peaks

    calls = []
    orig = peaks._disk_max_filter
    monkeypatch.setattr(peaks, "_disk_max_filter", lambda a, r: calls.append(r) or orig(a, r))
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, size=(37, 23)).astype(np.float64)  # many ties -> whole-map filter
    b = rng.random((41, 29))  # few candidates -> gather verification
    dy, dx = disk_offsets(5)
    fp = np.zeros((11, 11), dtype=bool)
    fp[dy + 5, dx + 5] = True
    for m, expected_calls in ((a, 1), (b, 1)):
        ref = ndi.maximum_filter(m, footprint=fp, mode="constant", cval=-np.inf)
        np.testing.assert_array_equal(peaks._local_max_mask(m, 5, np.ones(m.shape, bool)), m == ref)
        assert len(calls) == expected_calls


def test_nms_points():
    xy = np.array([[0.0, 0.0], [3.0, 0.0], [5.0, 0.0], [6.0, 0.0], [20.0, 0.0]])
    scores = np.array([0.5, 0.9, 0.5, 0.7, 0.1])
    keep = nms_points(xy, scores, min_distance=3)
    # order: 1 (0.9) keeps; 3 (0.7) is exactly 3 away -> kept; 0 (0.5) exactly 3 from 1 -> kept;
    # 2 (0.5) is 2 from 1 -> dropped; 4 kept.
    np.testing.assert_array_equal(keep, [1, 3, 0, 4])
    # ties broken by index
    keep = nms_points(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([0.5, 0.5]), 2)
    np.testing.assert_array_equal(keep, [0])
    keep = nms_points(np.zeros((0, 2)), np.zeros(0), 2)
    assert keep.shape == (0,)


# ----------------------------------------------------------------------------- hypothesis


maps_continuous = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 20), st.integers(1, 20)),
    elements=st.floats(0, 1, allow_nan=False, width=32),
    unique=True,
)
maps_levels = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
)


def _check_invariants(xy, scores, md, thr):
    assert xy.shape == (len(scores), 2) and scores.shape == (len(xy),)
    assert np.all(scores >= thr)
    assert np.all(np.diff(scores) <= 0)
    if len(xy) > 1:
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        d[np.diag_indices(len(xy))] = np.inf
        assert d.min() >= md - 1e-9


@settings(max_examples=50, deadline=None)
@given(
    prob=st.one_of(maps_continuous, maps_levels),
    md=st.floats(0, 6),
    thr=st.floats(0, 1),
    score=st.sampled_from(["peak", "mean"]),
)
def test_find_peaks_invariants(prob, md, thr, score):
    xy, scores = find_peaks(prob, min_distance=md, threshold=thr, score=score)
    _check_invariants(xy, scores, md, thr)


@settings(max_examples=50, deadline=None)
@given(prob=maps_continuous, md=st.floats(0, 6), thr=st.floats(0, 1))
def test_find_peaks_matches_brute_force_without_ties(prob, md, thr):
    xy, scores = find_peaks(prob, min_distance=md, threshold=thr)
    assert as_set(xy) == brute_local_max(prob, md, thr)
    np.testing.assert_array_equal(scores, prob[xy[:, 1].astype(int), xy[:, 0].astype(int)])


@settings(max_examples=50, deadline=None)
@given(
    xy=hnp.arrays(np.float64, st.tuples(st.integers(0, 30), st.just(2)), elements=st.integers(0, 10)),
    data=st.data(),
    md=st.floats(0, 5),
)
def test_nms_points_invariants(xy, data, md):
    scores = data.draw(hnp.arrays(np.float64, len(xy), elements=st.sampled_from([0.1, 0.5, 0.9])))
    keep = nms_points(xy, scores, md)
    assert len(set(keep.tolist())) == len(keep)
    _check_invariants(xy[keep], scores[keep], md, -np.inf)
    # every dropped point is within md of a kept point with priority (higher score / lower index)
    kept = set(keep.tolist())
    for i in range(len(xy)):
        if i in kept:
            continue
        d = np.hypot(*(xy[keep] - xy[i]).T)
        assert np.any(d < md)
