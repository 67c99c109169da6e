"""Pseudo-label rules of self-training: probability maps -> training masks.

Two modes (``SelfTrainConfig.pseudo_labels``):

``pixels`` (the self-training seed): 1 where the (percentile-stretched) map is above the
positive threshold, 0 below the negative threshold, IGNORE in between
(:func:`pseudo_labels`).

``particles``: the picker's peaks of the map become particles. The ``k`` highest peaks
that are not an already labelled particle (k from the expected particle count minus the
labelled ones) are painted as disks of the target radius; around every pseudo-particle
and every other peak that might be one (score >= ``background_score`` x the k-th
peak's), pixels within radius x (1 + ring) are IGNORE; pixels that are confidently low
(map below that same cutoff) and far from all of them are background; everything else
is IGNORE (:func:`particle_pseudo_labels`).

Either result is combined with the original labels by :func:`combine_labels`
(labelled particles and explicit ignores win; the protected ring around each labelled
particle is never background). For a positive-unlabelled retraining loss,
:func:`positives_vs_unlabelled` turns every non-positive pixel back into 'unlabelled' (0).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .targets import IGNORE, disk_mask


def validate_thresholds(pos: float, neg: float) -> None:
    if not (0 <= neg < pos <= 1):
        raise InputError(f"thresholds must satisfy 0 <= negative < positive <= 1, got positive {pos}, negative {neg}")


def pseudo_labels(prob: np.ndarray, pos: float, neg: float) -> np.ndarray:
    """1 where prob > pos, 0 where prob < neg, IGNORE in between."""
    validate_thresholds(pos, neg)
    out = np.full(prob.shape, IGNORE, np.float32)
    out[prob > pos] = 1.0
    out[prob < neg] = 0.0
    return out


def rescale_probability(prob: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch a probability map so its ``low``..``high`` percentiles span 0..1 (clipped).

    A positive-unlabelled model ranks pixels well but is rarely confident: on simulated
    micrographs at SNR 0.05 its probabilities spanned ~0.23-0.56, so the seeds' absolute
    thresholds (0.95 / 0.05) selected no pixel at all. The thresholds then act on the
    map's own range: 0.95 keeps the top few percent of the micrograph.
    """
    lo, hi = np.percentile(prob, [low, high])
    return np.clip((prob - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)


def combine_labels(pseudo: np.ndarray, original: np.ndarray | None, coords: np.ndarray | None = None,
                   radius: float = 0.0, protect_ring: float = 0.5) -> np.ndarray:
    """Pseudo-labels overridden by the original labels.

    Original positives (>= 0.5) and explicit ignores (-1) win; original zeros are
    'unlabelled' and take the pseudo-label. Around each labelled particle, pixels
    within radius * (1 + protect_ring) are never background: a 0 there becomes IGNORE.
    ``radius`` is the particle radius (downsampled px), not the smaller target disk.
    """
    combined = pseudo.astype(np.float32, copy=True)
    if coords is not None and len(coords) and radius > 0 and protect_ring > 0:
        ring = disk_mask(combined.shape, coords, radius * (1 + protect_ring))
        combined[(ring > 0) & (combined == 0)] = IGNORE
    if original is not None:
        combined[original == IGNORE] = IGNORE
        combined[original >= 0.5] = original[original >= 0.5]
    return combined


def positives_vs_unlabelled(mask: np.ndarray, original: np.ndarray | None = None) -> np.ndarray:
    """For a positive-unlabelled loss: positives stay 1, explicit original ignores stay
    IGNORE, every other pixel (pseudo-background or uncertain) is unlabelled (0)."""
    out = np.where(mask >= 0.5, mask, 0.0).astype(np.float32)
    if original is not None:
        out[original == IGNORE] = IGNORE
    return out


def coverage(mask: np.ndarray) -> dict[str, float]:
    n = mask.size
    return {"positive": 100.0 * float((mask >= 0.5).sum()) / n,
            "negative": 100.0 * float(((mask >= 0) & (mask < 0.5)).sum()) / n,
            "ignored": 100.0 * float((mask == IGNORE).sum()) / n}


def missing_particles(expected: float, labelled: int, fraction: float = 1.0, area_ratio: float = 1.0) -> int:
    """How many pseudo-particles one micrograph gets: ``fraction`` of the expected count
    (scaled by the micrograph's area relative to the typical one) not yet labelled."""
    return max(0, int(round(fraction * (expected * area_ratio - labelled))))


def drop_labelled(xy: np.ndarray, scores: np.ndarray, labelled: np.ndarray | None,
                  radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Peaks farther than ``radius`` from every labelled centre (closer ones are that particle)."""
    xy, scores = np.asarray(xy, np.float64).reshape(-1, 2), np.asarray(scores, np.float64).reshape(-1)
    if labelled is None or not len(labelled) or not len(xy):
        return xy, scores
    d2 = ((xy[:, None, :] - np.asarray(labelled, np.float64)[None, :, :]) ** 2).sum(-1)
    keep = d2.min(1) > radius**2
    return xy[keep], scores[keep]


def particle_pseudo_labels(shape: tuple[int, int], xy: np.ndarray, scores: np.ndarray, k: int, disk_radius: float,
                           radius: float, labelled: np.ndarray | None = None, prob: np.ndarray | None = None,
                           protect_ring: float = 0.5, background_score: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Particle-level pseudo-labels of one micrograph (see the module docstring).

    ``xy``/``scores``: the picker's candidate peaks (downsampled px); ``k``: how many become
    pseudo-particles; ``disk_radius``: the target disk (painted 1); ``radius``: the particle
    radius (peaks within it of a ``labelled`` centre are that particle; the exclusion zone
    is radius x (1 + ``protect_ring``)); ``prob``: the map, whose pixels at or above the
    cutoff are not background. Returns (mask of 1 / 0 / IGNORE, the pseudo-particle centres).
    """
    xy, scores = drop_labelled(xy, scores, labelled, radius)
    order = np.argsort(-scores, kind="stable")
    xy, scores = xy[order], scores[order]
    k = min(int(k), len(xy))
    positives = xy[:k]
    ref = scores[k - 1] if k > 0 else (scores[0] if len(scores) else np.inf)
    cutoff = background_score * ref
    doubtful = xy[k:][scores[k:] >= cutoff]
    mask = np.zeros(shape, np.float32)
    zone = radius * (1 + protect_ring)
    disk_mask(shape, np.concatenate([positives, doubtful]), zone, IGNORE, out=mask)
    if prob is not None and np.isfinite(cutoff):
        mask[prob >= cutoff] = IGNORE
    disk_mask(shape, positives, disk_radius, 1.0, out=mask)
    return mask, positives
