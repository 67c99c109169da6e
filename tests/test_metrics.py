"""Golden-value tests of cryopick.metrics (pixel and particle metrics), computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cryopick.errors import InputError
from cryopick.metrics import (
    PixelAccumulator,
    evaluate_picks,
    match_particles,
    pixel_metrics,
    pr_curve,
    roc_auc,
)

# ----------------------------------------------------------------------------- pixel metrics

PROBS = np.array([[0.9, 0.8, 0.3], [0.6, 0.1, 0.7]])
TARGET = np.array([[1, 0, 1], [-1, 0, 1]])


def test_pixel_metrics_golden():
    # Valid pixels (prob, label): (.9,1) (.8,0) (.3,1) (.1,0) (.7,1); the 0.6 is ignored.
    # threshold .5 -> predicted positive: .9 (TP), .8 (FP), .7 (TP); .3 is a FN.
    # tp=2 fp=1 fn=1: precision 2/3, recall 2/3, f1 = 4/6, iou = 2/4.
    # AUC: positives {.9,.3,.7} vs negatives {.8,.1}: .9>.8 .9>.1 .3>.1 .7>.1 -> 4 of 6 pairs.
    m = pixel_metrics(PROBS, TARGET, threshold=0.5)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.iou == pytest.approx(0.5)
    assert m.auc == pytest.approx(4 / 6)
    assert m.threshold == 0.5
    assert m.n_pixels == 5
    d = m.as_dict()
    assert set(d) == {"precision", "recall", "f1", "iou", "auc", "threshold", "n_pixels"}
    json.dumps(d, allow_nan=False)


def test_pixel_metrics_other_threshold_and_boundary():
    # threshold .8: predicted .9 (TP), .8 (FP, prob == threshold counts as positive)
    # tp=1 fp=1 fn=2: precision 1/2, recall 1/3, f1 = 2/5, iou = 1/4
    m = pixel_metrics(PROBS, TARGET, threshold=0.8)
    assert (m.precision, m.recall) == (pytest.approx(0.5), pytest.approx(1 / 3))
    assert m.f1 == pytest.approx(0.4) and m.iou == pytest.approx(0.25)
    assert m.auc == pytest.approx(4 / 6)  # AUC does not depend on the threshold


def test_pixel_metrics_lists_of_different_shapes():
    # same pixels as the golden test, split into arrays of different shapes
    probs = [np.array([0.9, 0.8, 0.3]), np.array([[0.6], [0.1], [0.7]])]
    target = [np.array([1, 0, 1]), np.array([[-1], [0], [1]])]
    m = pixel_metrics(probs, target)
    ref = pixel_metrics(PROBS, TARGET)
    assert m == ref


def test_auc_ties_are_averaged():
    # positive .5; negatives .5 (tie -> 1/2) and .2 (win -> 1): AUC = 1.5 / 2
    assert roc_auc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)
    m = pixel_metrics(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0]))
    assert m.auc == pytest.approx(0.75)


def test_pixel_metrics_degenerate_cases():
    # no positives in the target: recall 0 (0/0), AUC NaN; one FP -> precision 0
    m = pixel_metrics(np.array([0.9, 0.1]), np.array([0, 0]))
    assert (m.precision, m.recall, m.f1, m.iou) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(m.auc)
    assert m.as_dict()["auc"] is None
    # nothing predicted positive: precision 0 by convention, recall 0
    m = pixel_metrics(np.array([0.2, 0.1]), np.array([1, 0]))
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)
    assert m.auc == 1.0  # the positive (.2) still ranks above the negative (.1)
    # everything ignored
    m = pixel_metrics(np.array([0.1, 0.9]), np.array([-1, -1]))
    assert m.n_pixels == 0 and math.isnan(m.auc) and m.precision == 0.0
    # perfect prediction
    m = pixel_metrics(np.array([0.9, 0.1]), np.array([1, 0]))
    assert (m.precision, m.recall, m.f1, m.iou, m.auc) == (1.0, 1.0, 1.0, 1.0, 1.0)


def test_pixel_metrics_input_errors():
    with pytest.raises(InputError):
        pixel_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(InputError):
        pixel_metrics(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(InputError):
        pixel_metrics(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(InputError):
        pixel_metrics([np.zeros(3)], [np.zeros(3), np.zeros(3)])


def test_pixel_metrics_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    m = pixel_metrics(torch.tensor(PROBS, dtype=torch.float32), torch.tensor(TARGET, dtype=torch.float32))
    assert m.auc == pytest.approx(4 / 6) and m.n_pixels == 5


def test_accumulator_matches_exact_on_random_data():
    rng = np.random.default_rng(0)
    target = (rng.random(200_000) < 0.3).astype(np.int8)
    target[rng.random(target.size) < 0.05] = -1
    # informative, overlapping scores
    probs = np.clip(rng.normal(0.4 + 0.2 * (target == 1), 0.15), 0, 1)
    exact = pixel_metrics(probs, target, threshold=0.5, auc_method="exact")
    acc = PixelAccumulator(threshold=0.5, n_bins=1000)
    for chunk in np.array_split(np.arange(target.size), 7):
        acc.update(probs[chunk], target[chunk])
    approx = acc.compute()
    assert abs(approx.auc - exact.auc) < 1e-3
    assert abs(approx.auc - exact.auc) <= acc.auc_error_bound() + 1e-12
    assert acc.auc_error_bound() < 1e-3
    for k in ("precision", "recall", "f1", "iou", "threshold", "n_pixels"):
        assert getattr(approx, k) == getattr(exact, k), k
    hist = pixel_metrics(probs, target, threshold=0.5, auc_method="histogram")
    assert hist == approx
    # uniform random scores with random labels: AUC ~ 0.5
    p2, t2 = rng.random(100_000), rng.integers(0, 2, 100_000)
    acc2 = PixelAccumulator()
    acc2.update([p2[:500].reshape(20, 25), p2[500:]], [t2[:500].reshape(20, 25), t2[500:]])
    assert abs(acc2.compute().auc - roc_auc(p2, t2)) < 1e-3


def test_accumulator_merge_and_reset():
    a, b, whole = PixelAccumulator(), PixelAccumulator(), PixelAccumulator()
    a.update(PROBS[:1], TARGET[:1])
    b.update(PROBS[1:], TARGET[1:])
    whole.update(PROBS, TARGET)
    a.merge(b)
    assert a.compute() == whole.compute()
    whole.reset()
    assert whole.n_pixels == 0 and math.isnan(whole.compute().auc)


# ----------------------------------------------------------------------------- matching


def pts(*xy):
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


def test_match_tie_two_picks_equidistant_from_one_truth():
    p, t, d = match_particles(pts((-1, 0), (1, 0)), pts((0, 0)), radius=2)
    assert len(p) == 1 and t.tolist() == [0] and d.tolist() == [1.0]


def test_match_duplicates_give_one_tp_one_fp():
    picks = pts((5, 5), (5, 5))
    p, t, d = match_particles(picks, pts((5, 5)), radius=3)
    assert len(p) == 1 and d.tolist() == [0.0]  # zero distance is a match
    overall, _ = evaluate_picks({"m": (picks, np.array([0.9, 0.8]))}, {"m": pts((5, 5))}, radius=3)
    assert overall.n_matched == 1 and overall.precision == 0.5 and overall.recall == 1.0


def test_match_radius_is_inclusive():
    # distance exactly 5 (3-4-5 triangle) matches at radius 5
    p, _, d = match_particles(pts((0, 0)), pts((3, 4)), radius=5)
    assert p.tolist() == [0] and d.tolist() == [5.0]
    p, _, _ = match_particles(pts((0, 0)), pts((1, 0)), radius=1.0)
    assert p.tolist() == [0]
    # distance radius + 1e-6 does not
    p, _, _ = match_particles(pts((0, 0)), pts((5 + 1e-6, 0)), radius=5)
    assert p.size == 0
    p, _, _ = match_particles(pts((0, 0)), pts((3, 4)), radius=5 - 1e-6)
    assert p.size == 0


def greedy_match_count(picks, truth, radius):
    """Greedy by ascending distance over all candidate pairs (what naive matchers do)."""
    d = np.hypot(*(picks[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    used_p, used_t, n = set(), set(), 0
    for i, j in sorted(zip(*np.nonzero(d <= radius)), key=lambda ij: d[ij]):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            n += 1
    return n


def test_hungarian_beats_greedy():
    # truth at x=0 and x=2; picks at x=1.1 and x=3; radius 1.2.
    # distances: p0-t1 0.9, p1-t1 1.0, p0-t0 1.1 (p1-t0 = 3 > radius).
    # greedy takes p0-t1 (closest) and then nothing else fits -> 1 match;
    # optimal: p0-t0 (1.1) + p1-t1 (1.0) -> 2 matches.
    picks, truth = pts((1.1, 0), (3, 0)), pts((0, 0), (2, 0))
    assert greedy_match_count(picks, truth, 1.2) == 1
    p, t, d = match_particles(picks, truth, radius=1.2)
    assert p.tolist() == [0, 1] and t.tolist() == [0, 1]
    np.testing.assert_allclose(d, [1.1, 1.0])


def test_match_minimises_total_distance_among_maximum_matchings():
    # both assignments match 2; straight: 0.1 + 0.1, crossed: 1.1 + 0.9
    p, t, d = match_particles(pts((0, 0), (1, 0)), pts((0.1, 0), (1.1, 0)), radius=2)
    assert t.tolist() == [0, 1]
    np.testing.assert_allclose(d, [0.1, 0.1])


def test_match_empty_inputs():
    for picks, truth in [(pts(), pts((1, 1))), (pts((1, 1)), pts()), (pts(), pts()), (None, pts((1, 1)))]:
        p, t, d = match_particles(picks, truth, radius=5)
        assert p.shape == t.shape == d.shape == (0,)
    p, _, _ = match_particles(pts((0, 0)), pts((100, 100)), radius=5)
    assert p.size == 0


def test_match_many_components():
    # a grid of particles, each with one close pick and one far-ish decoy
    g = np.stack(np.meshgrid(np.arange(0, 500, 20.0), np.arange(0, 500, 20.0)), -1).reshape(-1, 2)
    picks = np.concatenate([g + [1.0, 0.0], g + [0.0, 3.0]])
    p, t, d = match_particles(picks, g, radius=4)
    assert len(p) == len(g)
    assert np.all(p < len(g))  # the closer pick of each pair wins (min total distance)
    np.testing.assert_allclose(d, 1.0)


def test_match_input_errors():
    with pytest.raises(InputError):
        match_particles(np.zeros((3, 3)), pts((1, 1)), 2)
    with pytest.raises(InputError):
        match_particles(pts((1, 1)), pts((1, 1)), -1)
    with pytest.raises(InputError):
        match_particles(pts((np.nan, 1)), pts((1, 1)), 1)


# ----------------------------------------------------------------------------- evaluate_picks


def small_case():
    # truth 2 particles; picks by descending score: TP (d=0), FP, TP (d=1)
    truth = {"m": pts((10, 10), (50, 50))}
    picks = {"m": (pts((10, 10), (100, 100), (50, 51)), np.array([0.9, 0.8, 0.7]))}
    return picks, truth


def test_hand_computed_ap_and_curve():
    picks, truth = small_case()
    m, per = evaluate_picks(picks, truth, radius=5)
    # curve points (threshold: precision, recall): .9: 1, .5; .8: .5, .5; .7: 2/3, 1
    np.testing.assert_allclose(m.pr_curve["thresholds"], [0.9, 0.8, 0.7])
    np.testing.assert_allclose(m.pr_curve["precision"], [1, 0.5, 2 / 3])
    np.testing.assert_allclose(m.pr_curve["recall"], [0.5, 0.5, 1])
    # interpolated precision [1, 2/3, 2/3]; AP = 0.5 * 1 + 0 * 2/3 + 0.5 * 2/3 = 0.8333
    assert m.ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    # all picks: 2 TP of 3 picks, 2 of 2 truth
    assert (m.precision, m.recall) == (pytest.approx(2 / 3), 1.0)
    assert m.f1 == pytest.approx(0.8)
    assert (m.n_picks, m.n_truth, m.n_matched) == (3, 2, 2)
    assert m.mean_error == pytest.approx(0.5)  # (0 + 1) / 2
    assert m.threshold is None
    # F1 per threshold: 2/3, 1/2, 4/5 -> best 0.8 at 0.7
    assert m.best_f1 == pytest.approx(0.8) and m.best_threshold == pytest.approx(0.7)
    assert per["m"].ap == pytest.approx(m.ap)


def test_threshold_operating_point():
    picks, truth = small_case()
    m, _ = evaluate_picks(picks, truth, radius=5, threshold=0.75)
    # picks >= .75: the TP at (10,10) and the FP -> precision 1/2, recall 1/2, f1 1/2
    assert (m.precision, m.recall, m.f1) == (0.5, 0.5, 0.5)
    assert (m.n_picks, m.n_matched, m.mean_error, m.threshold) == (2, 1, 0.0, 0.75)
    assert m.ap == pytest.approx(0.8333333)  # AP and curve are threshold independent


def test_ap_is_one_for_perfect_ranking():
    truth = {"a": pts((0, 0), (20, 0)), "b": pts((0, 0))}
    picks = {
        "a": (pts((0, 0), (20, 1), (60, 60)), np.array([0.9, 0.8, 0.1])),
        "b": (pts((1, 0), (40, 40)), np.array([0.85, 0.2])),
    }
    m, per = evaluate_picks(picks, truth, radius=3)
    assert m.ap == pytest.approx(1.0)
    assert m.best_f1 == pytest.approx(1.0) and m.best_threshold == pytest.approx(0.8)
    assert m.precision == pytest.approx(3 / 5) and m.recall == 1.0
    assert m.mean_error == pytest.approx(2 / 3)
    assert per["a"].n_matched == 2 and per["b"].n_matched == 1


def test_micrographs_without_truth_or_without_picks():
    truth = {"t_only": pts((0, 0), (10, 10)), "both": pts((5, 5))}
    picks = {
        "p_only": (pts((1, 1), (2, 2), (3, 3)), np.array([0.9, 0.8, 0.7])),
        "both": (pts((5, 5)), np.array([0.95])),
    }
    m, per = evaluate_picks(picks, truth, radius=2)
    assert sorted(per) == ["both", "p_only", "t_only"]
    # overall: 4 picks, 3 truth, 1 match
    assert (m.n_picks, m.n_truth, m.n_matched) == (4, 3, 1)
    assert m.precision == pytest.approx(0.25) and m.recall == pytest.approx(1 / 3)
    # p_only: all FP, no truth -> precision 0, recall 0 (0/0), AP 0
    p = per["p_only"]
    assert (p.precision, p.recall, p.f1, p.ap, p.n_matched) == (0.0, 0.0, 0.0, 0.0, 0)
    assert math.isnan(p.mean_error) and p.as_dict()["mean_error"] is None
    # t_only: no picks -> everything 0, empty curve, no best threshold
    t = per["t_only"]
    assert (t.precision, t.recall, t.f1, t.ap, t.n_picks, t.n_truth) == (0.0, 0.0, 0.0, 0.0, 0, 2)
    assert t.best_threshold is None and t.pr_curve["thresholds"].shape == (0,)
    # overall curve: .95 TP then three FPs -> AP = 1/3 (recall step 1/3 at precision 1)
    assert m.ap == pytest.approx(1 / 3)


def test_empty_everything():
    m, per = evaluate_picks({}, {}, radius=5)
    assert per == {} and (m.precision, m.recall, m.f1, m.ap) == (0.0, 0.0, 0.0, 0.0)
    m, _ = evaluate_picks({"a": (pts(), np.zeros(0))}, {"a": pts()}, radius=5)
    assert m.n_picks == 0 and m.n_truth == 0


def test_bare_coordinates_mean_score_one():
    m, _ = evaluate_picks({"a": pts((0, 0), (9, 9))}, {"a": pts((0, 1))}, radius=2)
    assert (m.n_matched, m.precision, m.recall) == (1, 0.5, 1.0)
    # one threshold (all scores 1): precision .5 at recall 1 -> AP .5
    assert m.ap == pytest.approx(0.5)


def test_curve_matches_greedily_in_score_order_operating_point_rematches():
    # truth T at the origin; pick A (score .9) 1 px away, pick B (score .1) 0.5 px away.
    # The curve matches in score order (as VOC/COCO): A takes T, B is a false positive, so the
    # high-threshold end is precision 1 (an optimal matching of all picks would give T to the
    # closer B and say precision 0 at threshold .9). The operating point re-matches its picks.
    truth = {"m": pts((0, 0))}
    picks = {"m": (pts((1, 0), (0.5, 0)), np.array([0.9, 0.1]))}
    m, _ = evaluate_picks(picks, truth, radius=1.5)
    np.testing.assert_allclose(m.pr_curve["precision"], [1.0, 0.5])
    np.testing.assert_allclose(m.pr_curve["recall"], [1.0, 1.0])
    assert m.ap == pytest.approx(1.0) and m.best_threshold == pytest.approx(0.9)
    assert m.mean_error == pytest.approx(0.5)  # all picks, optimally matched: B is the closer
    m, _ = evaluate_picks(picks, truth, radius=1.5, threshold=0.5)
    assert (m.precision, m.recall, m.n_matched, m.mean_error) == (1.0, 1.0, 1, 1.0)


def test_greedy_match_hand_placed():
    from cryopick.metrics import greedy_match

    truth = pts((0, 0), (10, 0))
    # p0 (.5) at (4, 0) reaches only T0 within 5 px, p1 (.9) at (6, 0) only T1: both match
    xy = pts((4, 0), (6, 0), (30, 30))
    np.testing.assert_array_equal(greedy_match(xy, [0.5, 0.9, 0.99], truth, 5.0), [True, True, False])
    # both reach only T0: the higher-scoring p1 takes it, p0 finds nothing free
    xy = pts((4, 0), (3, 0))
    np.testing.assert_array_equal(greedy_match(xy, [0.5, 0.9], truth, 5.0), [False, True])
    assert greedy_match(np.zeros((0, 2)), [], truth, 5.0).shape == (0,)
    assert not greedy_match(xy, [0.5, 0.9], np.zeros((0, 2)), 5.0).any()


def test_tied_picks_are_matched_optimally_among_themselves():
    """Hypothesis found it: two tied picks at x=7 and x=3, particles at x=5 and x=9 (r=2).
    Taken one by one, the pick at 7 could take the particle at 5 and leave the pick at 3 with
    nothing; entering together they take one particle each, in either input order."""
    from cryopick.metrics import greedy_match

    truth = pts((0, 5), (0, 9))
    for xy in (pts((0, 7), (0, 3)), pts((0, 3), (0, 7))):
        np.testing.assert_array_equal(greedy_match(xy, [0.1, 0.1], truth, 2.0), [True, True])
        m, _ = evaluate_picks({"a": (xy, np.array([0.1, 0.1]))}, {"a": truth}, radius=2.0)
        assert (m.precision, m.recall, m.ap, m.best_f1) == (1.0, 1.0, 1.0, 1.0)
        assert m.pr_curve["precision"][-1] == m.precision
    # different scores: the higher one goes first and takes the nearer particle (x=9 at
    # distance 2 ties with x=5; the first in truth order wins), the other gets what is free
    np.testing.assert_array_equal(greedy_match(pts((0, 7), (0, 3)), [0.9, 0.1], truth, 2.0), [True, False])


def test_threshold_equals_evaluating_filtered_picks():
    rng = np.random.default_rng(3)
    truth = {f"m{i}": rng.uniform(0, 200, (30, 2)) for i in range(4)}
    picks = {}
    for name, t in truth.items():
        xy = np.concatenate([t[:25] + rng.normal(0, 2, (25, 2)), rng.uniform(0, 200, (15, 2))])
        picks[name] = (xy, rng.random(len(xy)))
    m, per = evaluate_picks(picks, truth, radius=4, threshold=0.4)
    filtered = {k: (xy[s >= 0.4], s[s >= 0.4]) for k, (xy, s) in picks.items()}
    m2, per2 = evaluate_picks(filtered, truth, radius=4)
    for k in ("precision", "recall", "f1", "n_picks", "n_matched", "mean_error"):
        assert getattr(m, k) == pytest.approx(getattr(m2, k)), k
        for name in truth:
            assert getattr(per[name], k) == pytest.approx(getattr(per2[name], k)), k


def test_equal_scores_enter_the_curve_together():
    # scores: .9 (TP), .5 (FP), .5 (TP); 2 truth: one curve point at .5 with precision 2/3
    truth = {"m": pts((0, 0), (10, 0))}
    picks = {"m": (pts((0, 0), (50, 50), (10, 0)), np.array([0.9, 0.5, 0.5]))}
    m, _ = evaluate_picks(picks, truth, radius=1)
    np.testing.assert_allclose(m.pr_curve["thresholds"], [0.9, 0.5])
    np.testing.assert_allclose(m.pr_curve["precision"], [1, 2 / 3])
    assert m.ap == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_pr_curve_function_and_as_dict_json():
    curve, ap, best_f1, best_thr = pr_curve([0.9, 0.8, 0.7], [True, False, True], 2)
    assert ap == pytest.approx(0.8333333) and best_f1 == pytest.approx(0.8) and best_thr == 0.7
    picks, truth = small_case()
    m, _ = evaluate_picks(picks, truth, radius=5)
    d = m.as_dict(include_curve=True)
    s = json.dumps(d, allow_nan=False)
    assert json.loads(s)["pr_curve"]["precision"] == pytest.approx([1, 0.5, 2 / 3])
    assert "pr_curve" not in m.as_dict()


def test_evaluate_input_errors():
    with pytest.raises(InputError):
        evaluate_picks({"a": (pts((1, 1)), np.array([0.1, 0.2]))}, {}, radius=2)
    with pytest.raises(InputError):
        evaluate_picks({"a": (pts((1, 1)), np.array([np.nan]))}, {}, radius=2)
    with pytest.raises(InputError):
        evaluate_picks({}, {"a": np.zeros((2, 3))}, radius=2)
