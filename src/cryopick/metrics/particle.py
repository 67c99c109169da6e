"""Particle metrics (the picking view).

A pick matches a true particle when their distance is ``<= radius`` (inclusive), one-to-one.
:func:`match_particles` finds the assignment with the most matches and, among those, the smallest
total distance (Hungarian algorithm on each connected component of the candidate-pair graph).

:func:`evaluate_picks` pools every micrograph:

* The precision-recall curve is built as detection benchmarks (VOC/COCO) build it: picks are
  matched greedily in descending score order (per micrograph), each to the nearest particle
  within the radius that no higher-scoring pick holds; the score threshold is then swept and
  the matched picks count as true positives. A low-scoring candidate next to a particle thus
  never takes the match from the higher-scoring pick on it (a single optimal matching of all
  picks would, which made the curve, AP and the calibrated threshold pessimistic for pickers
  that return dense low-score candidates, such as Topaz with a low extraction threshold).
* ``ap`` = area under that curve with VOC "all points" interpolation: precision is made
  monotonically non-increasing from the right, and AP = sum over recall steps of
  (recall step) x (interpolated precision). Picks with equal scores enter together, and are
  matched optimally among themselves: with one score level the curve's last point is the
  all-picks operating point; with several it can match fewer (greedy <= optimal).
* ``precision``/``recall``/``f1``/``n_matched``/``mean_error`` describe one operating point: all
  picks, or the picks with ``score >= threshold`` when ``threshold`` is given; those picks are
  RE-MATCHED (Hungarian) so the numbers equal what evaluating the filtered pick set would give.
* ``best_f1``/``best_threshold`` come from the curve (greedy matching in score order).
* Micrographs in ``picks`` but not in ``truth`` count as having no particles (all their picks
  are false positives); micrographs in ``truth`` but not in ``picks`` have no picks (all their
  particles are missed). 0/0 -> 0 as for pixels; ``ap = 0`` when there is no true particle;
  ``mean_error`` is NaN (``None`` in :meth:`ParticleMetrics.as_dict`) when nothing matched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from cryopick.errors import InputError
from cryopick.metrics.pixel import _div, _json_float, _to_numpy

__all__ = ["ParticleMetrics", "match_particles", "greedy_match", "evaluate_picks", "pr_curve"]


def _as_xy(xy, name: str) -> np.ndarray:
    a = np.asarray(_to_numpy(xy) if xy is not None else np.zeros((0, 2)), dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise InputError(f"{name} must have shape (N, 2) [x, y], got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or infinite coordinates")
    return a


def _check_radius(radius) -> float:
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise InputError(f"radius must be a number, got {radius!r}") from None
    if not math.isfinite(r) or r < 0:
        raise InputError(f"radius must be a finite number >= 0, got {radius!r}")
    return r


def match_particles(picks_xy, truth_xy, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of picks to true particles within ``radius`` (inclusive).

    Maximises the number of matched pairs with distance ``<= radius``; among such assignments,
    minimises the total distance. Returns ``(pick_idx, truth_idx, distances)`` sorted by
    ``pick_idx`` (int arrays and float64 distances; empty when nothing matches).
    """
    picks = _as_xy(picks_xy, "picks_xy")
    truth = _as_xy(truth_xy, "truth_xy")
    radius = _check_radius(radius)
    n_p, n_t = len(picks), len(truth)
    if n_p == 0 or n_t == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64)

    # candidate pairs: query a hair beyond the radius, then decide with our own distance
    cand = cKDTree(picks).sparse_distance_matrix(
        cKDTree(truth), radius * (1 + 1e-9) + 1e-12, output_type="ndarray"
    )
    pi = cand["i"].astype(np.intp)
    ti = cand["j"].astype(np.intp)
    d = np.hypot(picks[pi, 0] - truth[ti, 0], picks[pi, 1] - truth[ti, 1])
    ok = d <= radius
    pi, ti, d = pi[ok], ti[ok], d[ok]
    if pi.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64)

    # independent sub-problems = connected components of the bipartite candidate graph
    graph = sparse.coo_matrix((np.ones(pi.size, np.int8), (pi, n_p + ti)), shape=(n_p + n_t, n_p + n_t))
    _, labels = connected_components(graph, directed=False)
    comp = labels[pi]
    comp_size = np.bincount(comp)[comp]
    single = comp_size == 1  # a component with one candidate pair: that pair is matched
    out_p, out_t, out_d = [pi[single]], [ti[single]], [d[single]]

    multi = np.flatnonzero(~single)
    if multi.size:
        order = multi[np.argsort(comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        for grp in np.split(order, bounds):
            rows, ri = np.unique(pi[grp], return_inverse=True)
            cols, ci = np.unique(ti[grp], return_inverse=True)
            # any assignment with one more candidate pair is cheaper than any with one fewer
            big = (min(rows.size, cols.size) + 1) * (radius + 1.0)
            cost = np.full((rows.size, cols.size), big)
            is_cand = np.zeros((rows.size, cols.size), dtype=bool)
            cost[ri, ci] = d[grp]
            is_cand[ri, ci] = True
            r, c = linear_sum_assignment(cost)
            good = is_cand[r, c]
            r, c = r[good], c[good]
            out_p.append(rows[r])
            out_t.append(cols[c])
            out_d.append(cost[r, c])

    p_idx = np.concatenate(out_p).astype(np.intp)
    t_idx = np.concatenate(out_t).astype(np.intp)
    dist = np.concatenate(out_d).astype(np.float64)
    o = np.argsort(p_idx, kind="stable")
    return p_idx[o], t_idx[o], dist[o]


@dataclass
class ParticleMetrics:
    precision: float
    recall: float
    f1: float
    ap: float
    n_picks: int
    n_truth: int
    n_matched: int
    mean_error: float
    threshold: float | None
    pr_curve: dict = field(default_factory=dict, repr=False)
    best_f1: float = 0.0
    best_threshold: float | None = None

    def as_dict(self, include_curve: bool = False) -> dict:
        """JSON-friendly dict (NaN -> None, arrays -> lists); the PR curve only on request."""
        out = {
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
            "f1": _json_float(self.f1),
            "ap": _json_float(self.ap),
            "n_picks": int(self.n_picks),
            "n_truth": int(self.n_truth),
            "n_matched": int(self.n_matched),
            "mean_error": _json_float(self.mean_error),
            "threshold": _json_float(self.threshold),
            "best_f1": _json_float(self.best_f1),
            "best_threshold": _json_float(self.best_threshold),
        }
        if include_curve:
            out["pr_curve"] = {k: [float(x) for x in np.asarray(v)] for k, v in self.pr_curve.items()}
        return out


def greedy_match(picks_xy, scores, truth_xy, radius: float) -> np.ndarray:
    """True-positive flags of picks matched greedily in descending score order.

    Each pick takes the nearest still unmatched particle within ``radius`` (inclusive). Picks
    with equal scores enter together: they are matched optimally among themselves
    (:func:`match_particles` against the particles still free), so the order of tied picks in
    the input never changes the result, and with a single score level the matching is the
    optimal one.
    """
    picks, truth = _as_xy(picks_xy, "picks_xy"), _as_xy(truth_xy, "truth_xy")
    is_tp = np.zeros(len(picks), dtype=bool)
    if len(picks) == 0 or len(truth) == 0:
        return is_tp
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    groups = np.split(order, np.flatnonzero(s[1:] != s[:-1]) + 1)
    tree = cKDTree(truth)
    taken = np.zeros(len(truth), dtype=bool)
    reach = radius * (1 + 1e-9) + 1e-12
    for grp in groups:
        if grp.size > 1:
            free = np.flatnonzero(~taken)
            gi, tj, _ = match_particles(picks[grp], truth[free], radius)
            is_tp[grp[gi]] = True
            taken[free[tj]] = True
            continue
        i = int(grp[0])
        near = [j for j in tree.query_ball_point(picks[i], reach) if not taken[j]]
        if not near:
            continue
        d = np.hypot(truth[near, 0] - picks[i, 0], truth[near, 1] - picks[i, 1])
        k = int(np.argmin(d))
        if d[k] <= radius:
            taken[near[k]] = True
            is_tp[i] = True
    return is_tp


def pr_curve(scores, is_tp, n_truth: int) -> tuple[dict, float, float, float | None]:
    """Precision-recall sweep over score thresholds for fixed TP flags.

    Returns ``(curve, ap, best_f1, best_threshold)``; ``curve`` has arrays ``thresholds``
    (distinct scores, descending), ``precision``, ``recall``, ``f1`` for keeping picks with
    ``score >= threshold``. AP uses VOC all-points interpolation; 0 when ``n_truth == 0``.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if scores.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return {"thresholds": empty, "precision": empty, "recall": empty, "f1": empty}, 0.0, 0.0, None
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    tp_cum = np.cumsum(is_tp[order])
    # last index of each group of equal scores
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), s.size - 1)
    thresholds = s[ends]
    tp = tp_cum[ends].astype(np.float64)
    n_kept = (ends + 1).astype(np.float64)
    precision = tp / n_kept
    recall = tp / n_truth if n_truth > 0 else np.zeros_like(tp)
    denom = n_kept + n_truth  # 2tp + fp + fn = n_kept + n_truth
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if n_truth > 0:
        interp = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.diff(np.concatenate([[0.0], recall]))
        ap = float(np.sum(steps * interp))
    else:
        ap = 0.0
    best = int(np.argmax(f1))
    curve = {"thresholds": thresholds, "precision": precision, "recall": recall, "f1": f1}
    return curve, min(max(ap, 0.0), 1.0), float(f1[best]), float(thresholds[best])


def _unpack_picks(name: str, value) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InputError(f"picks[{name!r}] must be (xy, scores), got a tuple of {len(value)}")
        xy, scores = value
    else:
        xy, scores = value, None
    xy = _as_xy(xy, f"picks[{name!r}] coordinates")
    if scores is None:
        scores = np.ones(len(xy), dtype=np.float64)
    else:
        scores = np.asarray(_to_numpy(scores), dtype=np.float64).reshape(-1)
        if scores.size != len(xy):
            raise InputError(f"picks[{name!r}] has {len(xy)} coordinates but {scores.size} scores")
        if not np.isfinite(scores).all():
            raise InputError(f"picks[{name!r}] has NaN or infinite scores")
    return xy, scores


def _metrics(
    scores: np.ndarray,
    is_tp_all: np.ndarray,
    n_truth: int,
    n_picks_op: int,
    n_matched_op: int,
    dist_op: np.ndarray,
    threshold: float | None,
) -> ParticleMetrics:
    curve, ap, best_f1, best_thr = pr_curve(scores, is_tp_all, n_truth)
    return ParticleMetrics(
        precision=_div(n_matched_op, n_picks_op),
        recall=_div(n_matched_op, n_truth),
        f1=_div(2 * n_matched_op, n_picks_op + n_truth),
        ap=ap,
        n_picks=int(n_picks_op),
        n_truth=int(n_truth),
        n_matched=int(n_matched_op),
        mean_error=float(np.mean(dist_op)) if dist_op.size else float("nan"),
        threshold=None if threshold is None else float(threshold),
        pr_curve=curve,
        best_f1=best_f1,
        best_threshold=best_thr,
    )


def evaluate_picks(
    picks: Mapping[str, tuple | np.ndarray],
    truth: Mapping[str, np.ndarray],
    radius: float,
    threshold: float | None = None,
) -> tuple[ParticleMetrics, dict[str, ParticleMetrics]]:
    """Particle-level evaluation over micrographs.

    Args:
        picks: micrograph name -> ``(xy (N, 2), scores (N,))`` (or a bare ``xy`` array: all
            scores 1).
        truth: micrograph name -> ``xy (M, 2)``.
        radius: match radius in pixels (inclusive).
        threshold: if given, the operating point uses picks with ``score >= threshold``.

    Returns:
        ``(overall, per_micrograph)``; ``per_micrograph`` covers the union of names, sorted.
        See the module docstring for the protocol (greedy matching in score order for the
        curve/AP, optimal re-matching at the operating threshold).
    """
    radius = _check_radius(radius)
    if threshold is not None:
        threshold = float(threshold)
        if math.isnan(threshold):
            raise InputError("threshold must not be NaN")
    names = sorted(set(picks) | set(truth), key=str)
    per: dict[str, ParticleMetrics] = {}
    all_scores, all_tp, all_dist = [], [], []
    tot_truth = tot_picks = tot_matched = 0
    for name in names:
        xy, scores = _unpack_picks(name, picks[name]) if name in picks else _unpack_picks(name, None)
        t_xy = _as_xy(truth.get(name), f"truth[{name!r}]")
        is_tp = greedy_match(xy, scores, t_xy, radius)
        if threshold is None:
            n_op, op_dist = len(xy), match_particles(xy, t_xy, radius)[2]
        else:
            sel = np.flatnonzero(scores >= threshold)
            n_op = sel.size
            _, _, op_dist = match_particles(xy[sel], t_xy, radius)
        per[name] = _metrics(scores, is_tp, len(t_xy), n_op, op_dist.size, op_dist, threshold)
        all_scores.append(scores)
        all_tp.append(is_tp)
        all_dist.append(op_dist)
        tot_truth += len(t_xy)
        tot_picks += n_op
        tot_matched += op_dist.size

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    overall = _metrics(
        cat(all_scores, np.float64),
        cat(all_tp, bool),
        tot_truth,
        tot_picks,
        tot_matched,
        cat(all_dist, np.float64),
        threshold,
    )
    return overall, per
