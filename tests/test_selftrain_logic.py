import numpy as np
import pytest

from cryopick.config import SelfTrainConfig
from cryopick.errors import InputError
from cryopick.selftrain import combine_labels, coverage, pseudo_labels, thresholds_for
from cryopick.targets import IGNORE

PROB = np.array([[0.99, 0.96, 0.95, 0.5],
                 [0.06, 0.05, 0.01, 0.0]], np.float32)


def test_pseudo_labels_threshold_band():
    pl = pseudo_labels(PROB, 0.95, 0.05)
    np.testing.assert_array_equal(pl, [[1, 1, IGNORE, IGNORE], [IGNORE, IGNORE, 0, 0]])  # strict inequalities


def test_pseudo_labels_rejects_crossed_thresholds():
    with pytest.raises(InputError):
        pseudo_labels(PROB, 0.3, 0.6)


def test_original_labels_always_win():
    pseudo = np.array([[0, 0, 1, IGNORE]], np.float32)
    original = np.array([[1, 0, 0, IGNORE]], np.float32)
    # labelled positive beats pseudo-negative; original 0 is 'unlabelled' -> pseudo value; explicit ignore stays
    np.testing.assert_array_equal(combine_labels(pseudo, original), [[1, 0, 1, IGNORE]])


def test_unlabelled_micrograph_takes_pseudo_labels():
    pseudo = pseudo_labels(PROB, 0.95, 0.05)
    np.testing.assert_array_equal(combine_labels(pseudo, None), pseudo)


def test_ring_around_labelled_particle_is_never_negative():
    pseudo = np.zeros((21, 21), np.float32)  # model says background everywhere
    coords = np.array([[10.0, 10.0]])
    original = np.zeros_like(pseudo)
    original[8:13, 8:13] = 1  # rough disk
    out = combine_labels(pseudo, original, coords, radius=4.0, protect_ring=0.5)
    assert out[10, 10] == 1
    assert out[10, 15] == IGNORE  # distance 5 <= 6 = radius*(1+ring): not background
    assert out[10, 17] == 0  # distance 7: outside the ring
    # a pseudo-positive inside the ring stays positive
    pseudo[10, 15] = 1
    assert combine_labels(pseudo, original, coords, 4.0, 0.5)[10, 15] == 1


def test_fixed_thresholds():
    cfg = SelfTrainConfig()
    assert thresholds_for(1, 5, cfg) == (0.95, 0.05)
    assert thresholds_for(5, 5, cfg) == (0.95, 0.05)


def test_dynamic_schedule_values():
    cfg = SelfTrainConfig(dynamic_thresholds=True)
    vals = [thresholds_for(k, 5, cfg) for k in range(1, 6)]
    np.testing.assert_allclose(vals, [(0.98, 0.02), (0.96, 0.04), (0.94, 0.06), (0.92, 0.08), (0.90, 0.10)])
    assert thresholds_for(1, 1, cfg) == pytest.approx((0.98, 0.02))


def test_coverage_percentages():
    m = np.array([1, 0, 0, IGNORE], np.float32)
    assert coverage(m) == {"positive": 25.0, "negative": 50.0, "ignored": 25.0}


def test_rescale_probability_stretches_to_percentiles():
    from cryopick.selftrain import rescale_probability

    prob = np.linspace(0.2, 0.6, 101).reshape(1, -1).astype(np.float32)
    r = rescale_probability(prob)
    assert r.min() == 0 and r.max() == 1
    assert r[0, 50] == pytest.approx(0.5, abs=1e-5)
    # the seeds' thresholds select pixels after stretching, none before
    assert (pseudo_labels(prob, 0.95, 0.05) == IGNORE).all()
    pl = pseudo_labels(r, 0.95, 0.05)
    assert (pl == 1).sum() > 0 and (pl == 0).sum() > 0
