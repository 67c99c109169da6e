"""Self-training (positive-unlabelled learning) as in the self-training seed.

After a supervised phase, each iteration k = 1..N
  1. predicts every training micrograph (labelled or not),
  2. turns the map into pseudo-labels: 1 where p > positive threshold, 0 where
     p < negative threshold, IGNORE (-1) in between,
  3. combines them with the original labels: labelled particles (1) and explicit
     ignores (-1) always win, and a ring of ``protect_ring`` x radius around each
     labelled particle is never made background (set to ignore instead),
  4. fine-tunes the model on the combined masks for ``retrain_epochs``.

Thresholds are fixed (default 0.95 / 0.05) or follow the dynamic schedule of the
action-plan seed: linear from ``dynamic_start`` at the first iteration to
``dynamic_end`` at the last (0.98 -> 0.90 and 0.02 -> 0.10 by default).

Outputs: baseline_model.pt, model_iteration_K.pt, final_model.pt and
training_summary.json (config, per-iteration coverage, agreement, metrics, warnings).
final_model.pt is the candidate (baseline or iteration) with the best particle F1 on
the validation micrographs (``select_final``; ``final_iteration`` in the summary says
which): on EMPIAR-10017 self-training lowered validation AP from 0.69 to 0.41, on hard
simulated data it raised test AP from 0.875 to 0.924, so the held-out micrographs decide.

Under torchrun the retraining is distributed (``train.fit``), the pseudo-labelling pass
predicts each rank's shard of the micrographs and gathers the new masks on every rank,
and rank 0 alone writes the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import distributed as ddist
from .checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from .config import RunConfig, SelfTrainConfig, run_record, save_run_config
from .data import Sample
from .errors import InputError
from .inference import predict_probability, resolve_amp
from .io.atomic import atomic_write_json, ensure_out_dir
from .pipeline import RunData, load_run_data, resolve, store_threshold
from .targets import IGNORE, disk_mask
from .train import evaluate, fit, resolve_device


def thresholds_for(iteration: int, total: int, cfg: SelfTrainConfig) -> tuple[float, float]:
    """(positive, negative) thresholds of iteration ``iteration`` (1-based) out of ``total``."""
    if not cfg.dynamic_thresholds:
        return cfg.positive_threshold, cfg.negative_threshold
    t = 0.0 if total <= 1 else (iteration - 1) / (total - 1)
    (p0, n0), (p1, n1) = cfg.dynamic_start, cfg.dynamic_end
    return p0 + t * (p1 - p0), n0 + t * (n1 - n0)


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
    """
    combined = pseudo.astype(np.float32, copy=True)
    if coords is not None and len(coords) and radius > 0 and protect_ring > 0:
        ring = disk_mask(combined.shape, coords, radius * (1 + protect_ring))
        combined[(ring > 0) & (combined == 0)] = IGNORE
    if original is not None:
        combined[original == IGNORE] = IGNORE
        combined[original >= 0.5] = original[original >= 0.5]
    return combined


def coverage(mask: np.ndarray) -> dict[str, float]:
    n = mask.size
    return {"positive": 100.0 * float((mask >= 0.5).sum()) / n,
            "negative": 100.0 * float(((mask >= 0) & (mask < 0.5)).sum()) / n,
            "ignored": 100.0 * float((mask == IGNORE).sum()) / n}


@dataclass
class _Orig:
    mask: np.ndarray | None
    coords: np.ndarray | None


def selftrain_run(cfg: RunConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                  data: RunData | None = None) -> dict:
    st = cfg.selftrain
    if st.iterations < 0 or st.retrain_epochs < 1:
        raise InputError(f"--iterations must be >= 0 and --retrain-epochs >= 1 (got {st.iterations}, {st.retrain_epochs})")
    for k in range(1, st.iterations + 1):
        validate_thresholds(*thresholds_for(k, st.iterations, st))
    out = ensure_out_dir(out_dir)
    device = resolve_device(cfg.train.device)
    main = ddist.init_from_env(device).is_main
    if not main:
        log = _quiet
    init_ckpt = load_checkpoint(st.init, expect_arch=cfg.model.arch) if st.init else None  # before writing anything
    data = data or load_run_data(cfg, log)
    cfg = resolve(cfg, data)
    if main:
        save_run_config(cfg, out)
    amp = resolve_amp(cfg.train.amp, device)
    record = run_record(cfg)
    train, val, prep = data.train, data.val, data.prep
    originals = [_Orig(s.mask, s.coords) for s in train]
    summary_path = out / "training_summary.json"
    summary: dict = {"config": record, "iterations": [], "warnings": []}

    # ---- phase 1: supervised (or a given checkpoint)
    baseline = out / "baseline_model.pt"
    if st.init:
        model = model_from_checkpoint(init_ckpt, st.init)
        if main and not baseline.exists():
            save_checkpoint(make_checkpoint(model, prep, config=record, epoch=0, history=[]), baseline)
        log(f"starting from {st.init}")
    elif cfg.train.resume and baseline.exists():
        model = model_from_checkpoint(load_checkpoint(baseline), baseline)
        log(f"resuming: supervised phase already done ({baseline})")
    else:
        log("phase 1: supervised training")
        result = fit(train, val, prep, cfg.model, cfg.train, out / "supervised", run_config=record, log=log)
        best = out / "supervised" / "best_model.pt"
        if main:
            save_checkpoint(load_checkpoint(best), baseline)
            store_threshold([baseline], val, cfg, log)  # so the baseline picks at its own calibrated threshold
        ddist.barrier()
        model = model_from_checkpoint(load_checkpoint(baseline), baseline)
    model.to(device)
    base_metrics = evaluate(model, val, device, cfg.train.tile_size).as_dict() if val else None
    summary["baseline"] = base_metrics
    prev_loss = None

    # ---- phase 2: iterations
    for k in range(1, st.iterations + 1):
        it_path = out / f"model_iteration_{k}.pt"
        if cfg.train.resume and it_path.exists():
            ckpt = load_checkpoint(it_path)
            model = model_from_checkpoint(ckpt, it_path).to(device)
            summary["iterations"].append(ckpt.get("selftrain_stats", {"iteration": k}))
            prev_loss = summary["iterations"][-1].get("train_loss")
            log(f"resuming: iteration {k} already done ({it_path})")
            continue
        pos, neg = thresholds_for(k, st.iterations, st)
        log(f"self-training iteration {k}/{st.iterations}: thresholds positive {pos:.3f}, negative {neg:.3f}")
        stats = _relabel(model, train, originals, pos, neg, prep.mask_radius, st.protect_ring, device,
                         cfg.train.tile_size, amp=amp, rescale=st.rescale)
        log(f"  pseudo-positive {stats['pseudo_positive']:.2f}%  reliable-negative {stats['reliable_negative']:.2f}%  "
            f"ignored {stats['ignored']:.2f}%  agreement with labels {stats['label_agreement']:.3f}")
        train_cfg = dataclasses.replace(cfg.train, seed=cfg.train.seed + k, loss=st.retrain_loss)
        result = fit(train, val, prep, cfg.model, train_cfg, out / f"iteration_{k}", model=model,
                     epochs=st.retrain_epochs, run_config=record, log=lambda m: log("  " + m))
        model = result.model
        stats.update({"iteration": k, "positive_threshold": pos, "negative_threshold": neg,
                      "train_loss": result.history[-1]["train_loss"] if result.history else None,
                      "validation": evaluate(model, val, device, cfg.train.tile_size).as_dict() if val else None})
        warnings = _health(stats, prev_loss)
        for w in warnings:
            log(f"  warning: {w}")
        stats["warnings"] = warnings
        prev_loss = stats["train_loss"]
        summary["iterations"].append(stats)
        summary["warnings"] += [f"iteration {k}: {w}" for w in warnings]
        if main:
            ckpt = make_checkpoint(model, prep, config=record, epoch=k, history=result.history, selftrain_stats=stats)
            save_checkpoint(ckpt, it_path)
            atomic_write_json(summary_path, summary)

    final = out / "final_model.pt"
    candidates = [baseline] + [out / f"model_iteration_{k}.pt" for k in range(1, st.iterations + 1)]
    chosen, threshold = len(candidates) - 1, None
    if main:
        chosen, threshold = _select_final(candidates, val, cfg, st.select_final, log)
        save_checkpoint(load_checkpoint(candidates[chosen]), final)
    chosen, threshold = ddist.broadcast_object((chosen, threshold))
    summary["pick_threshold"], summary["final_iteration"] = threshold, chosen
    if val:
        summary["final"] = summary["iterations"][chosen - 1]["validation"] if chosen else base_metrics
    if main:
        atomic_write_json(summary_path, summary)
    ddist.barrier()
    return summary


def _select_final(candidates: list[Path], val: list[Sample], cfg: RunConfig, select: bool,
                  log: Callable[[str], None]) -> tuple[int, float | None]:
    """Index of the model that becomes final_model.pt (0 = the supervised baseline) and its
    calibrated pick threshold. With ``select``, the candidate with the best particle F1 on
    the validation micrographs wins (later iterations win ties): self-training that did
    not help on held-out micrographs is not shipped. Otherwise the last iteration."""
    if not select or not any(s.coords is not None for s in val):
        return len(candidates) - 1, store_threshold([candidates[-1]], val, cfg, log)
    scores = []
    for k, path in enumerate(candidates):
        thr = store_threshold([path], val, cfg, lambda m, k=k: log(f"  {'baseline' if k == 0 else f'iteration {k}'}: {m}"))
        calib = load_checkpoint(path).get("calibration") or {}
        scores.append((calib.get("best_f1") or 0.0, k, thr))
    best_f1, k, thr = max(scores)
    log(f"final model: {'the supervised baseline' if k == 0 else f'iteration {k}'} "
        f"(best validation particle F1 {best_f1:.3f})")
    return k, thr


def _quiet(message: str) -> None:
    """The log of ranks other than 0: silent."""


def _relabel(model, train: list[Sample], originals: list[_Orig], pos: float, neg: float, radius: float,
             ring: float, device, tile: int, amp: bool = False, rescale: bool = True) -> dict:
    """Replace each training sample's mask by its combined pseudo-labels; return coverage statistics.

    Distributed, each rank predicts its shard of ``train`` and the masks and counts are
    gathered on every rank (they all train on every micrograph next); the statistics are
    summed in micrograph order, so they equal the single-process ones.
    """
    distributed = ddist.is_distributed()
    mine = []
    for i in ddist.shard_indices(len(train)):
        s, orig = train[i], originals[i]
        prob = predict_probability(model, s.image, tile=tile, device=device, amp=amp)
        pseudo = pseudo_labels(rescale_probability(prob) if rescale else prob, pos, neg)
        mask = combine_labels(pseudo, orig.mask, orig.coords, radius, ring)
        counts = {"coverage": coverage(mask), "pseudo_pos": float((pseudo == 1).sum()),
                  "pseudo_neg": float((pseudo == 0).sum()), "agree": 0.0, "n_orig": 0}
        if orig.mask is not None:
            lab = orig.mask >= 0.5
            counts["agree"] = float((prob[lab] >= 0.5).sum())
            counts["n_orig"] = int(lab.sum())
        mine.append((i, (_pack_mask(mask) if distributed else mask, counts)))
    results = ddist.merge_shards(ddist.all_gather_object(mine))

    totals = {"positive": 0.0, "negative": 0.0, "ignored": 0.0}
    pseudo_pos = pseudo_neg = 0.0
    agree, n_orig = 0.0, 0
    n_px = 0
    for s, (mask, counts) in zip(train, results):
        s.mask = _unpack_mask(mask)
        c = counts["coverage"]
        for key in totals:
            totals[key] += c[key] * s.mask.size
        pseudo_pos += counts["pseudo_pos"]
        pseudo_neg += counts["pseudo_neg"]
        n_px += s.mask.size
        agree += counts["agree"]
        n_orig += counts["n_orig"]
    return {"pseudo_positive": 100 * pseudo_pos / n_px, "reliable_negative": 100 * pseudo_neg / n_px,
            "positive": totals["positive"] / n_px, "negative": totals["negative"] / n_px,
            "ignored": totals["ignored"] / n_px, "label_agreement": agree / n_orig if n_orig else float("nan")}


def _pack_mask(mask: np.ndarray) -> np.ndarray:
    """int8 when the mask holds only -1/0/1 (4x less to send between ranks), else unchanged."""
    small = mask.astype(np.int8)
    return small if np.array_equal(small, mask) else mask


def _unpack_mask(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) if mask.dtype == np.int8 else mask


def _health(stats: dict, prev_loss: float | None) -> list[str]:
    """The seed's warning signs."""
    w = []
    if prev_loss is not None and stats.get("train_loss") is not None and stats["train_loss"] > prev_loss:
        w.append(f"training loss rose ({prev_loss:.4f} -> {stats['train_loss']:.4f}); consider a lower --lr")
    if stats["pseudo_positive"] > 50:
        w.append(f"pseudo-positive coverage {stats['pseudo_positive']:.1f}% > 50%; raise --positive-threshold")
    if stats["ignored"] > 50:
        w.append(f"ignored pixels {stats['ignored']:.1f}% > 50%; widen the threshold gap")
    return w
