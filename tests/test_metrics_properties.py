"""Hypothesis invariants of particle matching and picking metrics."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from cryopick.metrics import PixelAccumulator, evaluate_picks, match_particles, pixel_metrics

# integer-valued coordinates make ties, duplicates and exact-radius distances common
coord = st.one_of(st.integers(0, 12).map(float), st.floats(0, 12, allow_nan=False))
points = st.lists(st.tuples(coord, coord), max_size=14).map(lambda p: np.array(p, dtype=np.float64).reshape(-1, 2))
radius = st.one_of(st.sampled_from([0.0, 1.0, 2.0, 5.0]), st.floats(0, 6))
SETTINGS = settings(max_examples=50, deadline=None)


def dist_matrix(a, b):
    return np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])


def greedy_count(picks, truth, r):
    d = dist_matrix(picks, truth)
    used_p, used_t, n = set(), set(), 0
    for i, j in sorted(zip(*np.nonzero(d <= r)), key=lambda ij: d[ij]):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            n += 1
    return n


def max_matching_size(picks, truth, r):
    if len(picks) == 0 or len(truth) == 0:
        return 0
    adj = sparse.csr_matrix(dist_matrix(picks, truth) <= r)
    return int(np.count_nonzero(maximum_bipartite_matching(adj, perm_type="column") >= 0))


@SETTINGS
@given(picks=points, truth=points, r=radius)
def test_matching_invariants(picks, truth, r):
    p, t, d = match_particles(picks, truth, r)
    assert len(p) == len(t) == len(d)
    assert len(set(p.tolist())) == len(p)  # every pick matched at most once
    assert len(set(t.tolist())) == len(t)  # every truth matched at most once
    assert len(p) <= min(len(picks), len(truth))
    assert np.all(d <= r)
    if len(p):
        np.testing.assert_allclose(d, np.hypot(*(picks[p] - truth[t]).T))
    assert len(p) >= greedy_count(picks, truth, r)
    assert len(p) == max_matching_size(picks, truth, r)  # maximum cardinality


small_points = st.lists(st.tuples(coord, coord), max_size=5).map(
    lambda p: np.array(p, dtype=np.float64).reshape(-1, 2)
)


@SETTINGS
@given(picks=small_points, truth=small_points, r=radius)
def test_matching_is_lexicographically_optimal_brute_force(picks, truth, r):
    """Most matches, then least total distance, by enumerating all injections."""
    p, _, d = match_particles(picks, truth, r)
    dm = dist_matrix(picks, truth)
    best = (0, 0.0)
    small, large = (picks, truth) if len(picks) <= len(truth) else (truth, picks)
    for perm in itertools.permutations(range(len(large)), len(small)):
        ds = [dm[i, j] if small is picks else dm[j, i] for i, j in enumerate(perm)]
        ok = [x for x in ds if x <= r]
        cand = (len(ok), -sum(ok))
        if cand > (best[0], -best[1]):
            best = (len(ok), sum(ok))
    assert len(p) == best[0]
    assert abs(float(d.sum()) - best[1]) < 1e-9


@st.composite
def scored_picks(draw):
    xy = draw(points)
    scores = draw(hnp.arrays(np.float64, len(xy), elements=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])))
    return xy, scores


@SETTINGS
@given(
    picks=st.dictionaries(st.sampled_from(["a", "b", "c"]), scored_picks(), max_size=3),
    truth=st.dictionaries(st.sampled_from(["a", "b", "d"]), points, max_size=3),
    r=radius,
    thr=st.one_of(st.none(), st.floats(0, 1)),
)
def test_metric_ranges(picks, truth, r, thr):
    overall, per = evaluate_picks(picks, truth, r, threshold=thr)
    assert set(per) == set(picks) | set(truth)
    one_level = len({float(x) for _, sc in picks.values() for x in sc}) <= 1
    for m in [overall, *per.values()]:
        for v in (m.precision, m.recall, m.f1, m.ap, m.best_f1):
            assert 0.0 <= v <= 1.0
        assert m.n_matched <= min(m.n_picks, m.n_truth)
        c = m.pr_curve
        assert np.all((c["precision"] >= 0) & (c["precision"] <= 1))
        assert np.all(np.diff(c["recall"]) >= 0)  # recall is non-decreasing along the sweep
        assert np.all(np.diff(c["thresholds"]) < 0)
        if thr is None and m.n_picks:  # the lowest threshold keeps every pick: greedy <= optimal
            assert c["recall"][-1] <= m.recall + 1e-12
            assert c["precision"][-1] <= m.precision + 1e-12
            if one_level:  # tied picks are matched optimally, so the two agree exactly
                assert c["precision"][-1] == m.precision and c["recall"][-1] == m.recall
        if m.n_matched:
            assert 0 <= m.mean_error <= r
    assert overall.n_truth == sum(len(v) for v in truth.values())
    assert overall.n_matched == sum(m.n_matched for m in per.values())


@SETTINGS
@given(picks=scored_picks(), truth=points, r=radius, far=st.floats(0, 1))
def test_adding_far_pick_never_increases_precision(picks, truth, r, far):
    xy, scores = picks
    before, _ = evaluate_picks({"m": (xy, scores)}, {"m": truth}, r)
    far_xy = np.array([[1000.0, 1000.0]])
    after, _ = evaluate_picks(
        {"m": (np.concatenate([xy, far_xy]), np.append(scores, far))}, {"m": truth}, r
    )
    assert after.precision <= before.precision
    assert after.recall == before.recall
    assert after.n_matched == before.n_matched


@SETTINGS
@given(
    probs=hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(0, 1, allow_nan=False)),
    data=st.data(),
    thr=st.floats(0, 1),
)
def test_pixel_metric_ranges_and_histogram_bound(probs, data, thr):
    target = data.draw(hnp.arrays(np.int8, probs.shape, elements=st.sampled_from([-1, 0, 1])))
    m = pixel_metrics(probs, target, threshold=thr)
    for v in (m.precision, m.recall, m.f1, m.iou):
        assert 0.0 <= v <= 1.0
    assert m.iou <= m.f1 + 1e-12
    acc = PixelAccumulator(threshold=thr)
    acc.update(probs, target)
    a = acc.compute()
    if np.isnan(m.auc):
        assert np.isnan(a.auc)
    else:
        assert 0.0 <= m.auc <= 1.0
        assert abs(a.auc - m.auc) <= acc.auc_error_bound() + 1e-12
