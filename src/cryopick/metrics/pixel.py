"""Pixel metrics (the segmentation view).

Inputs are probability maps in [0, 1] and target masks with 1 = particle, 0 = background and
-1 = ignore; ignored pixels are excluded from every count. A pixel is *predicted positive* when
``prob >= threshold``. Degenerate cases use the convention ``0 / 0 -> 0``:

* precision = tp / (tp + fp), 0 when nothing is predicted positive;
* recall    = tp / (tp + fn), 0 when there is no positive pixel;
* f1        = 2 tp / (2 tp + fp + fn), 0 when both are empty;
* iou       = tp / (tp + fp + fn), 0 when both are empty;
* auc       = ROC AUC = P(score of a random positive > score of a random negative), ties
  counting 1/2 (Mann-Whitney U / (n_pos n_neg)); NaN when only one class is present.

:func:`pixel_metrics` computes the AUC exactly from ranks (``scipy.stats.rankdata``, ties
averaged) for up to :data:`EXACT_AUC_MAX_PIXELS` pixels; beyond that (or with
``auc_method="histogram"``) it uses the histogram estimate of :class:`PixelAccumulator`, which is
what training validation should use (constant memory, one pass).

Histogram AUC error: scores are binned into ``n_bins`` equal bins over [0, 1] per class; pairs of
a positive and a negative in different bins are ordered exactly, pairs in the same bin are counted
as ties (1/2). The absolute error is therefore at most ``0.5 * sum_b p_b n_b`` where ``p_b`` /
``n_b`` are the fractions of positives / negatives falling in bin ``b``
(:meth:`PixelAccumulator.auc_error_bound`); this is ``<= 0.5 * max_b p_b`` and about
``0.5 / n_bins`` for spread-out scores (5e-4 with 1000 bins), and usually much smaller because
within-bin errors cancel. It can be large only when most scores of both classes pile into one bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from cryopick.errors import InputError

__all__ = ["EXACT_AUC_MAX_PIXELS", "PixelMetrics", "PixelAccumulator", "pixel_metrics", "roc_auc"]

EXACT_AUC_MAX_PIXELS = 4_000_000
_PIXEL_CHUNK = 1 << 22  # pixels processed at a time (bounds temporary memory)


def _div(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _json_float(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- pixel metrics


@dataclass
class PixelMetrics:
    precision: float
    recall: float
    f1: float
    iou: float
    auc: float
    threshold: float
    n_pixels: int

    def as_dict(self) -> dict:
        """JSON-friendly dict (NaN -> None)."""
        return {
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
            "f1": _json_float(self.f1),
            "iou": _json_float(self.iou),
            "auc": _json_float(self.auc),
            "threshold": _json_float(self.threshold),
            "n_pixels": int(self.n_pixels),
        }


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _valid_pairs(probs, target):
    """Yield flattened (scores, is_positive) over non-ignored pixels, in chunks of bounded size."""
    ps, ts = _as_list(probs), _as_list(target)
    if len(ps) != len(ts):
        raise InputError(f"got {len(ps)} probability maps but {len(ts)} targets")
    for p, t in zip(ps, ts):
        p, t = _to_numpy(p), _to_numpy(t)
        if p.shape != t.shape:
            raise InputError(f"probability map shape {p.shape} differs from target shape {t.shape}")
        p = p.reshape(-1)
        t = t.reshape(-1)
        for s in range(0, p.size, _PIXEL_CHUNK):
            pc, tc = p[s : s + _PIXEL_CHUNK], t[s : s + _PIXEL_CHUNK]
            if not np.isfinite(pc).all():
                raise InputError("probability map contains NaN or infinite values")
            bad = (tc != 0) & (tc != 1) & (tc != -1)
            if bad.any():
                raise InputError(f"target values must be 1, 0 or -1 (ignore); found {np.unique(tc[bad])[:5]}")
            keep = tc != -1
            yield pc[keep], tc[keep] == 1


def _confusion(scores: np.ndarray, pos: np.ndarray, threshold: float) -> tuple[int, int, int]:
    pred = scores >= threshold
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(pos)) - tp
    return tp, fp, fn


def _metrics_from_counts(tp: int, fp: int, fn: int, auc: float, threshold: float, n: int) -> PixelMetrics:
    return PixelMetrics(
        precision=_div(tp, tp + fp),
        recall=_div(tp, tp + fn),
        f1=_div(2 * tp, 2 * tp + fp + fn),
        iou=_div(tp, tp + fp + fn),
        auc=float(auc),
        threshold=float(threshold),
        n_pixels=int(n),
    )


def roc_auc(scores, is_positive) -> float:
    """Exact ROC AUC from the rank statistic (ties averaged); NaN if only one class."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = np.asarray(is_positive, dtype=bool).reshape(-1)
    n_pos = int(np.count_nonzero(pos))
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


class PixelAccumulator:
    """Streaming pixel metrics: exact tp/fp/fn at ``threshold``, histogram-approximated AUC.

    Memory is ``2 * n_bins`` counters whatever the number of pixels. Scores are clipped to [0, 1]
    for binning (bin ``b`` holds ``[b / n_bins, (b + 1) / n_bins)``, the last bin also 1.0).
    See the module docstring for the AUC error bound.
    """

    def __init__(self, threshold: float = 0.5, n_bins: int = 1000):
        if n_bins < 1:
            raise InputError(f"n_bins must be >= 1, got {n_bins}")
        self.threshold = float(threshold)
        self.n_bins = int(n_bins)
        self.reset()

    def reset(self) -> None:
        self.tp = self.fp = self.fn = 0
        self.hist_pos = np.zeros(self.n_bins, dtype=np.int64)
        self.hist_neg = np.zeros(self.n_bins, dtype=np.int64)

    @property
    def n_pixels(self) -> int:
        return int(self.hist_pos.sum() + self.hist_neg.sum())

    def update(self, probs, target) -> None:
        """Add probability map(s) and target(s) (arrays, tensors, or lists of them)."""
        for s, pos in _valid_pairs(probs, target):
            tp, fp, fn = _confusion(s, pos, self.threshold)
            self.tp += tp
            self.fp += fp
            self.fn += fn
            b = np.clip((s.astype(np.float64) * self.n_bins).astype(np.int64), 0, self.n_bins - 1)
            self.hist_pos += np.bincount(b[pos], minlength=self.n_bins)
            self.hist_neg += np.bincount(b[~pos], minlength=self.n_bins)

    def merge(self, other: "PixelAccumulator") -> None:
        if other.n_bins != self.n_bins or other.threshold != self.threshold:
            raise InputError("cannot merge accumulators with different thresholds or bin counts")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.hist_pos += other.hist_pos
        self.hist_neg += other.hist_neg

    def auc(self) -> float:
        n_pos = float(self.hist_pos.sum())
        n_neg = float(self.hist_neg.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        neg = self.hist_neg.astype(np.float64)
        below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
        return float(np.dot(self.hist_pos.astype(np.float64), below + 0.5 * neg) / (n_pos * n_neg))

    def auc_error_bound(self) -> float:
        """Upper bound on |histogram AUC - exact AUC| for the data seen (NaN if one class)."""
        n_pos = float(self.hist_pos.sum())
        n_neg = float(self.hist_neg.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        return 0.5 * float(np.dot(self.hist_pos / n_pos, self.hist_neg / n_neg))

    def compute(self) -> PixelMetrics:
        return _metrics_from_counts(self.tp, self.fp, self.fn, self.auc(), self.threshold, self.n_pixels)


def pixel_metrics(probs, target, threshold: float = 0.5, auc_method: str = "auto") -> PixelMetrics:
    """Pixel precision/recall/F1/IoU at ``threshold`` and ROC AUC.

    ``probs``/``target``: arrays (or torch tensors) of any matching shapes, or lists of them
    (each pair flattened, then concatenated). ``auc_method``: ``"exact"`` (ranks),
    ``"histogram"`` (:class:`PixelAccumulator`, 1000 bins) or ``"auto"`` (exact up to
    :data:`EXACT_AUC_MAX_PIXELS` non-ignored pixels). tp/fp/fn are always exact.
    """
    if auc_method not in ("auto", "exact", "histogram"):
        raise InputError(f"auc_method must be 'auto', 'exact' or 'histogram', got {auc_method!r}")
    if auc_method == "auto":
        n = sum(int(np.count_nonzero(_to_numpy(t) != -1)) for t in _as_list(target))
        auc_method = "exact" if n <= EXACT_AUC_MAX_PIXELS else "histogram"
    if auc_method == "histogram":  # streamed: never holds more than one input array's pixels
        acc = PixelAccumulator(threshold)
        acc.update(probs, target)
        return acc.compute()
    pairs = list(_valid_pairs(probs, target))  # exact: needs every score at once for the ranks
    n = sum(s.size for s, _ in pairs)
    scores = np.concatenate([s for s, _ in pairs]) if pairs else np.zeros(0)
    pos = np.concatenate([p for _, p in pairs]) if pairs else np.zeros(0, dtype=bool)
    tp, fp, fn = _confusion(scores, pos, threshold)
    return _metrics_from_counts(tp, fp, fn, roc_auc(scores, pos), threshold, n)


# --------------------------------------------------------------------------- particle metrics
