#!/usr/bin/env python3
"""How sure is a margin? A paired block bootstrap of two pickers' test F1 on one set.

For two cached benchmark rows of one set (WORK/<set>/<picker>[@tag]/, as written by
compare_pickers.py), each picker's test picks at its calibrated threshold are matched to the
truth (Hungarian within the radius, as the benchmark scores them). Every true positive, false
pick and miss is put into a square block of the micrograph (``--block`` radii on a side, so
crowded neighbours, which err together, share a block); blocks are resampled with replacement,
the same blocks for both pickers (paired), and F1 = 2TP / (2TP + FP + FN) of each picker is
recomputed per resample. Printed: both F1s, their difference with a 95 % percentile interval,
the share of resamples in which A leads B by at least ``--margin`` (issue 11's target: 0.02),
and the standard errors of the difference and of A's F1 from the test set's size alone. The
threshold stays the one calibrated on validation; its own uncertainty (one validation micrograph
on the CryoPPP sets) and the training run's (seeds, machines) come on top.

usage: .venv/bin/python benchmarks/peers/significance.py ROW_A ROW_B [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agreement import _radius, _row  # noqa: E402

from cryopick.io import read_labels  # noqa: E402
from cryopick.metrics.particle import match_particles  # noqa: E402


def block_counts(truth: np.ndarray, picks: np.ndarray, radius: float, side: float) -> dict[tuple, np.ndarray]:
    """(block x, block y) -> [TP, FP, FN] of ``picks`` against ``truth`` on one micrograph; a hit
    counts in its true particle's block, a false pick in its own, a miss in the particle's."""
    p, t, _ = match_particles(picks, truth, radius)
    hit = np.zeros(len(truth), bool)
    hit[t] = True
    false = np.ones(len(picks), bool)
    false[p] = False
    out: dict[tuple, np.ndarray] = {}
    for xy, kind in ((truth[hit], 0), (picks[false], 1), (truth[~hit], 2)):
        for key in map(tuple, np.floor(np.asarray(xy, float).reshape(-1, 2) / side).astype(int)):
            out.setdefault(key, np.zeros(3, np.int64))[kind] += 1
    return out


def f1(c: np.ndarray) -> np.ndarray:
    """F1 of [..., (TP, FP, FN)] counts (0 where there is nothing at all)."""
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """F1 of A and of B over ``n`` resamples of the blocks (rows of the (B, 3) count arrays)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    return f1(a[idx].sum(axis=1)), f1(b[idx].sum(axis=1))


def compare(truth: dict, picks_a: dict, picks_b: dict, radius: float, side: float, n: int = 2000,
            margin: float = 0.02, seed: int = 0) -> dict:
    """The bootstrap summary for two pickers' thresholded picks (name -> (N, 2)) on ``truth``."""
    rows_a, rows_b = [], []
    for name, t in truth.items():
        ca = block_counts(t, np.asarray(picks_a.get(name, np.zeros((0, 2)))).reshape(-1, 2), radius, side)
        cb = block_counts(t, np.asarray(picks_b.get(name, np.zeros((0, 2)))).reshape(-1, 2), radius, side)
        for key in sorted(set(ca) | set(cb)):
            rows_a.append(ca.get(key, np.zeros(3, np.int64)))
            rows_b.append(cb.get(key, np.zeros(3, np.int64)))
    a, b = np.array(rows_a).reshape(-1, 3), np.array(rows_b).reshape(-1, 3)
    fa, fb = paired_bootstrap(a, b, n, seed)
    d = fa - fb
    n_truth = int(a[:, 0].sum() + a[:, 2].sum())
    point_a, point_b = float(f1(a.sum(0))), float(f1(b.sum(0)))
    return {"F1_a": point_a, "F1_b": point_b, "delta": point_a - point_b,
            "delta_ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
            f"p_delta_ge_{margin:g}": float(np.mean(d >= margin)), "se_delta": float(d.std()), "se_F1_a": float(fa.std()),
            "blocks": len(a), "n_truth": n_truth, "block_side_px": side, "resamples": n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("row_a", type=Path)
    ap.add_argument("row_b", type=Path)
    ap.add_argument("--block", type=float, default=8.0, help="block side in particle radii (default 8)")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--json", type=Path, help="write the summary here")
    a = ap.parse_args(argv)
    (ra, pa), (rb, pb) = _row(a.row_a), _row(a.row_b)
    truth = {k: v.xy for k, v in read_labels(a.row_a.parent / "data" / "test.star").items()}
    radius = float(ra.get("radius") or _radius(a.row_a))
    kept = [{k: np.asarray(xy)[np.asarray(s) >= r["cal_threshold"]] for k, (xy, s) in p.items()}
            for r, p in ((ra, pa), (rb, pb))]
    out = {"set": ra["set"], "a": f"{ra['picker']}@{ra.get('tag', '')}", "b": f"{rb['picker']}@{rb.get('tag', '')}",
           **compare(truth, *kept, radius, a.block * radius, a.resamples, a.margin)}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
