"""The pseudo-labelling pass of self-training: predict every training micrograph with the
teacher(s), label it (:mod:`cryopick.pseudo`), combine with the original labels, install
the new masks. Distributed, each rank labels its shard and the masks are gathered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import distributed as ddist
from .config import RunConfig
from .data import Sample
from .device import DeviceSettings
from .distributed import DistInfo
from .inference import predict_probability
from .pipeline import RunData
from .pseudo import (combine_labels, coverage, drop_labelled, missing_particles, particle_pseudo_labels,
                     positives_vs_unlabelled, pseudo_labels, rescale_probability)
from .targets import split_touching


@dataclass
class Orig:
    mask: np.ndarray | None
    coords: np.ndarray | None


@dataclass
class Run:
    """What every phase of one self-training run needs."""

    cfg: RunConfig
    out: Path
    hw: DeviceSettings  # set up once by selftrain_run
    dist: DistInfo
    record: dict
    data: RunData
    originals: list[Orig]
    log: Callable[[str], None]

    @property
    def device(self) -> torch.device:
        return self.hw.device

    @property
    def amp(self) -> bool:
        return self.hw.amp

    @property
    def main(self) -> bool:
        """Rank 0 (every single-process run): the one that writes files."""
        return self.dist.is_main

    @property
    def radius(self) -> float:
        """The particle radius in downsampled px (the protected ring and the peak matching use it)."""
        return self.data.prep.downsampled_radius


def relabel(run: Run, teachers: list, pos: float, neg: float, pu: bool) -> dict:
    """Replace each training sample's mask by its combined pseudo-labels; return coverage statistics.

    Distributed, each rank predicts its shard of ``train`` and the masks and counts are
    gathered on every rank (they all train on every micrograph next); the statistics are
    summed in micrograph order, so they equal the single-process ones.
    """
    train, prep = run.data.train, run.data.prep
    label = _particle_labeller(run, teachers) if run.cfg.selftrain.pseudo_labels == "particles" else \
        _pixel_labeller(run, pos, neg)
    distributed = ddist.is_distributed()
    mine = []
    for i in ddist.shard_indices(len(train)):
        s, orig = train[i], run.originals[i]
        prob = predict_probability(teachers, s.image, tile=run.cfg.train.tile_size, device=run.device, amp=run.amp)
        pseudo, extra, centres = label(s, orig, prob)
        mask = combine_labels(pseudo, orig.mask, orig.coords, run.radius, run.cfg.selftrain.protect_ring)
        if centres is not None and prep.split_touching > 0:  # labelled and pseudo-particles kept apart alike
            split_touching(mask, centres, prep.mask_radius, prep.split_touching * prep.mask_radius)
        if pu:
            mask = positives_vs_unlabelled(mask, orig.mask)
        counts = {"coverage": coverage(mask), "pseudo_pos": float((pseudo == 1).sum()),
                  "pseudo_neg": float((pseudo == 0).sum()), "agree": 0.0, "n_orig": 0, **extra}
        if orig.mask is not None:
            lab = orig.mask >= 0.5
            counts["agree"] = float((prob[lab] >= 0.5).sum())
            counts["n_orig"] = int(lab.sum())
        mine.append((i, (_pack_mask(mask) if distributed else mask, counts)))
    results = ddist.merge_shards(ddist.all_gather_object(mine))
    return _apply_relabel(train, results)


def _apply_relabel(train: list[Sample], results: list) -> dict:
    """Install the gathered masks; pool the per-micrograph counts into the iteration's statistics."""
    totals = {"positive": 0.0, "negative": 0.0, "ignored": 0.0}
    sums = {"pseudo_pos": 0.0, "pseudo_neg": 0.0, "agree": 0.0, "n_orig": 0, "particles": 0, "wanted": 0}
    n_px = 0
    for s, (mask, counts) in zip(train, results):
        s.mask = _unpack_mask(mask)
        for key in totals:
            totals[key] += counts["coverage"][key] * s.mask.size
        for key in sums:
            sums[key] += counts.get(key, 0)
        n_px += s.mask.size
    return {"pseudo_positive": 100 * sums["pseudo_pos"] / n_px, "reliable_negative": 100 * sums["pseudo_neg"] / n_px,
            "positive": totals["positive"] / n_px, "negative": totals["negative"] / n_px,
            "ignored": totals["ignored"] / n_px, "pseudo_particles": int(sums["particles"]),
            "wanted_particles": int(sums["wanted"]),
            "label_agreement": sums["agree"] / sums["n_orig"] if sums["n_orig"] else float("nan")}


def _pixel_labeller(run: Run, pos: float, neg: float):
    """Pixel pseudo-labels from probability thresholds. A labeller returns (pseudo mask, counts,
    particle centres to keep apart with ``--split-touching``, or None)."""
    rescale = run.cfg.selftrain.rescale

    def label(s: Sample, orig: Orig, prob: np.ndarray):
        return pseudo_labels(rescale_probability(prob) if rescale else prob, pos, neg), {}, None
    return label


def _particle_labeller(run: Run, teachers: list):
    """Particle pseudo-labels: the teachers' peaks, top k per micrograph (see :mod:`cryopick.pseudo`)."""
    from .picking import FALLBACK_THRESHOLD, Picker, calibrate_threshold

    st, prep = run.cfg.selftrain, run.data.prep
    picker = Picker(teachers, prep, run.cfg.pick, device=run.device)
    per_mic = run.cfg.data.particles_per_micrograph
    threshold = None
    if not per_mic:  # no expected count: the candidates above the teachers' calibrated threshold
        threshold = calibrate_threshold(picker, run.data.val)[0] if run.data.val else None
        threshold = FALLBACK_THRESHOLD if threshold is None else threshold
    mean_area = float(np.mean([s.image.size for s in run.data.train]))

    def label(s: Sample, orig: Orig, prob: np.ndarray):
        xy, scores = picker.peaks(prob)
        n_lab = len(orig.coords) if orig.coords is not None else 0
        if per_mic:
            k = missing_particles(per_mic, n_lab, st.pseudo_fraction, s.image.size / mean_area)
        else:
            _, free = drop_labelled(xy, scores, orig.coords, run.radius)
            k = int(round(st.pseudo_fraction * (free >= threshold).sum()))
        mask, positives = particle_pseudo_labels(s.image.shape, xy, scores, k, prep.mask_radius, run.radius,
                                                 orig.coords, prob, st.protect_ring, st.background_score)
        centres = positives if orig.coords is None else np.concatenate([np.reshape(orig.coords, (-1, 2)), positives])
        return mask, {"particles": len(positives), "wanted": k}, centres
    return label


def _pack_mask(mask: np.ndarray) -> np.ndarray:
    """int8 when the mask holds only -1/0/1 (4x less to send between ranks), else unchanged."""
    small = mask.astype(np.int8)
    return small if np.array_equal(small, mask) else mask


def _unpack_mask(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) if mask.dtype == np.int8 else mask
