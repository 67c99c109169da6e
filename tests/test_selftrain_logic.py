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


# ---------------------------------------------------------------- particle-level pseudo-labels
I = IGNORE
GOLDEN = np.array([  # 7 rows (y) x 9 columns (x); see test_particle_pseudo_labels_golden_mask
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, I, 0, 0, 0, I, 0, 0],
    [0, I, 1, I, 0, I, I, I, 0],
    [I, 1, 1, 1, I, I, I, I, I],
    [0, I, 1, I, 0, I, I, I, 0],
    [0, 0, I, 0, 0, 0, I, 0, 0],
    [I, 0, 0, 0, 0, 0, 0, 0, 0]], np.float32)


def test_particle_pseudo_labels_golden_mask():
    from cryopick.selftrain import particle_pseudo_labels

    # peaks (x, y): A the best free one, D doubtful (>= 0.5 x A's score), C too weak to matter,
    # E the strongest but on a labelled particle (within the radius of it): that particle, dropped
    xy = np.array([[2, 3], [6, 3], [8, 0], [8, 6]], float)
    scores = np.array([0.9, 0.5, 0.3, 0.95])
    prob = np.full((7, 9), 0.1, np.float32)
    prob[6, 0] = 0.6  # not confidently low: not background
    mask, positives = particle_pseudo_labels((7, 9), xy, scores, k=1, disk_radius=1.0, radius=1.0,
                                             labelled=np.array([[8.0, 6.0]]), prob=prob, protect_ring=1.0,
                                             background_score=0.5)
    np.testing.assert_array_equal(positives, [[2, 3]])
    np.testing.assert_array_equal(mask, GOLDEN)


def test_particle_pseudo_labels_take_top_k_by_score_in_any_order():
    from cryopick.selftrain import particle_pseudo_labels

    xy = np.array([[5, 5], [15, 5], [5, 15], [15, 15]], float)
    scores = np.array([0.2, 0.8, 0.6, 0.4])  # not sorted
    mask, positives = particle_pseudo_labels((21, 21), xy, scores, k=2, disk_radius=1.0, radius=2.0,
                                             background_score=0.0)
    np.testing.assert_array_equal(positives, [[15, 5], [5, 15]])
    assert mask[5, 15] == 1 and mask[15, 5] == 1
    # background_score 0: every other peak is doubtful, so its zone is ignored, never background
    assert mask[5, 5] == IGNORE and mask[15, 15] == IGNORE and mask[10, 10] == 0
    # k larger than the candidates: all of them
    _, positives = particle_pseudo_labels((21, 21), xy, scores, k=10, disk_radius=1.0, radius=2.0)
    assert len(positives) == 4
    # k = 0 and no peak: all background
    mask, positives = particle_pseudo_labels((5, 5), np.zeros((0, 2)), np.zeros(0), k=0, disk_radius=1, radius=1)
    assert len(positives) == 0 and (mask == 0).all()


def test_missing_particles_from_the_expected_count():
    from cryopick.selftrain import missing_particles

    assert missing_particles(10, 3) == 7
    assert missing_particles(10, 4, fraction=0.5) == 3
    assert missing_particles(10, 3, area_ratio=2.0) == 17  # a micrograph twice the typical area
    assert missing_particles(10, 12) == 0  # more labelled than expected: none


def test_positives_vs_unlabelled_for_the_pu_loss():
    from cryopick.selftrain import positives_vs_unlabelled

    mask = np.array([[1, 0, IGNORE, 1]], np.float32)
    original = np.array([[0, 0, 0, IGNORE]], np.float32)
    # pseudo-background and uncertain pixels are unlabelled (0); an explicit original ignore stays
    np.testing.assert_array_equal(positives_vs_unlabelled(mask, original), [[1, 0, 0, IGNORE]])
    np.testing.assert_array_equal(positives_vs_unlabelled(mask), [[1, 0, 0, 1]])


def test_pseudo_particles_join_the_labelled_set_for_the_prior():
    from cryopick.targets import disk_mask, pu_prior

    labelled = disk_mask((64, 64), np.array([[10.0, 10.0]]), 3.0)
    more = disk_mask((64, 64), np.array([[10.0, 10.0], [40.0, 40.0], [20.0, 50.0]]), 3.0)
    assert pu_prior([more], 5, 3.0) < pu_prior([labelled], 5, 3.0)


# ---------------------------------------------------------------- warnings and the closing line
def _stats(**kw):
    return {"pseudo_positive": 1.0, "ignored": 90.0, "wanted_particles": 10, "pseudo_particles": 10, **kw}


def test_health_is_quiet_on_a_healthy_particle_iteration():
    from cryopick.selftrain import _health

    history = [{"train_loss": 0.5}, {"train_loss": 0.4}]
    assert _health(_stats(), history, "particles") == []  # most pixels ignored by design: no warning


def test_health_warnings_name_the_flag():
    from cryopick.selftrain import _health

    w = _health(_stats(), [{"train_loss": 0.5}, {"train_loss": 0.4}], "pixels")
    assert len(w) == 1 and "--positive-threshold" in w[0] and "--negative-threshold" in w[0]
    w = _health(_stats(pseudo_particles=2), [{"train_loss": 0.4}, {"train_loss": 0.5}], "particles")
    assert any("--lr" in x and "during the iteration" in x for x in w)
    assert any("--particles-per-micrograph" in x and "2 of 10" in x for x in w)


def test_closing_line_names_the_shipped_candidate_and_its_particle_scores():
    from cryopick.selftrain import closing_line

    s = {"iterations": [{}, {}, {}], "final_iteration": 1, "shipped": "iteration 1",
         "final_particles": {"f1": 0.61, "ap": 0.52},
         "candidates": {"baseline": {"f1": 0.55, "ap": 0.50}, "iteration 1": {"f1": 0.61, "ap": 0.52}}}
    line = closing_line(s)
    assert "shipped iteration 1 of 3" in line and "F1 0.610" in line and "AP 0.520" in line and "0.550" in line
    s.update(final_iteration=0, shipped="baseline", final_particles={"f1": 0.55, "ap": 0.50})
    assert "shipped baseline" in closing_line(s) and "no iteration beat" in closing_line(s)


def test_selftrain_config_errors_name_the_flag():
    from cryopick.selftrain import check_selftrain_config

    for kw, flag in [({"pseudo_labels": "blobs"}, "--pseudo-labels"), ({"pseudo_fraction": 1.5}, "--pseudo-fraction"),
                     ({"teacher": "x"}, "--teacher"), ({"iteration_model": "x"}, "--iteration-model")]:
        with pytest.raises(InputError, match=flag):
            check_selftrain_config(SelfTrainConfig(**kw))
