"""Self-training (positive-unlabelled learning) as in the self-training seed, at the particle level.

After a supervised phase, each iteration k = 1..N
  1. predicts every training micrograph (labelled or not) with the teacher (the latest
     model, or with ``teacher: ensemble`` the mean of the baseline and every iteration),
  2. turns the maps into pseudo-labels (:mod:`cryopick.pseudo`): with ``--pseudo-labels
     particles`` (default) the picker's peaks, the top k per micrograph where k is the
     expected count (``--particles-per-micrograph``) minus the labelled particles, become
     disks of the target radius, confidently low pixels far from any peak background, the
     rest ignored; with ``pixels`` (the seed) 1 where p > positive threshold, 0 where
     p < negative threshold, IGNORE in between,
  3. combines them with the original labels: labelled particles (1) and explicit
     ignores (-1) always win, and within radius x (1 + ``protect_ring``) of each labelled
     particle (the particle radius, not the smaller target disk) no pixel is background,
  4. fine-tunes the model for ``retrain_epochs``. With ``retrain_loss: auto`` the loss is
     the supervised phase's: positive-unlabelled when the expected count is known, the
     pseudo-particles joining the labelled set (every other pixel unlabelled, the class
     prior recomputed), else ``combined`` on the 1 / 0 / ignore masks. With
     ``iteration_model: best`` the iteration's model is its epoch with the best validation
     particle AP (as ``train`` selects best_model.pt). The learning rate is ``retrain_lr``
     (default 0.3 x ``--lr``: fine-tuning, not retraining).

Thresholds (pixel mode) are fixed (default 0.95 / 0.05) or follow the dynamic schedule of
the action-plan seed: linear from ``dynamic_start`` at the first iteration to
``dynamic_end`` at the last (0.98 -> 0.90 and 0.02 -> 0.10 by default).

Outputs: baseline_model.pt, model_iteration_K.pt, final_model.pt and
training_summary.json (config, per-iteration coverage, agreement, metrics, warnings).
final_model.pt is the candidate (baseline or iteration) with the best particle F1 on
the validation micrographs (``select_final``; ``final_iteration`` and ``shipped`` in the
summary say which, ``final_particles`` its validation particle F1 and AP).
Measured choices: benchmarks/results/selftrain_ideas.md.

Under torchrun the retraining is distributed (``train.fit``), the pseudo-labelling pass
predicts each rank's shard of the micrographs and gathers the new masks on every rank,
and rank 0 alone writes the files.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

from . import distributed as ddist
from . import runlayout as layout
from .checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from .config import RunConfig, SelfTrainConfig, TrainConfig, run_record, save_run_config, with_command_defaults
from .ensemble import start_note
from .data import Sample
from .errors import InputError
from .io.atomic import ensure_out_dir
from .pipeline import RunData, load_run_data, pretrained_start, resolve, store_threshold
from .pseudo import (combine_labels, coverage, drop_labelled, missing_particles, particle_pseudo_labels,  # noqa: F401
                     positives_vs_unlabelled, pseudo_labels, rescale_probability, validate_thresholds)
from .relabel import Orig, Run, relabel
from .targets import IGNORE, pu_prior  # noqa: F401 (IGNORE: re-exported)
from .train import fit, setup_compute, validate

PSEUDO_MODES = ("particles", "pixels")
TEACHERS = ("last", "ensemble")
RETRAIN_LR_SCALE = 0.3  # the iterations fine-tune at 0.3 x --lr unless --retrain-lr is given


def thresholds_for(iteration: int, total: int, cfg: SelfTrainConfig) -> tuple[float, float]:
    """(positive, negative) thresholds of iteration ``iteration`` (1-based) out of ``total``."""
    if not cfg.dynamic_thresholds:
        return cfg.positive_threshold, cfg.negative_threshold
    t = 0.0 if total <= 1 else (iteration - 1) / (total - 1)
    (p0, n0), (p1, n1) = cfg.dynamic_start, cfg.dynamic_end
    return p0 + t * (p1 - p0), n0 + t * (n1 - n0)


def check_selftrain_config(st: SelfTrainConfig) -> None:
    """One InputError line, naming the flag, for the first unusable self-training option."""
    if st.iterations < 0 or st.retrain_epochs < 1:
        raise InputError(f"--iterations must be >= 0 and --retrain-epochs >= 1 (got {st.iterations}, {st.retrain_epochs})")
    if st.pseudo_labels not in PSEUDO_MODES:
        raise InputError(f"--pseudo-labels must be one of {', '.join(PSEUDO_MODES)}, got {st.pseudo_labels!r}")
    if st.teacher not in TEACHERS:
        raise InputError(f"--teacher must be one of {', '.join(TEACHERS)}, got {st.teacher!r}")
    if st.iteration_model not in ("best", "last"):
        raise InputError(f"--iteration-model must be best or last, got {st.iteration_model!r}")
    if not 0 <= st.pseudo_fraction <= 1:
        raise InputError(f"--pseudo-fraction must be in [0, 1], got {st.pseudo_fraction}")
    if st.retrain_lr is not None and st.retrain_lr <= 0:
        raise InputError(f"--retrain-lr must be positive, got {st.retrain_lr}")
    if not 0 <= st.background_score <= 1:
        raise InputError(f"--background-score must be in [0, 1], got {st.background_score}")
    for k in range(1, st.iterations + 1):
        validate_thresholds(*thresholds_for(k, st.iterations, st))


def selftrain_run(cfg: RunConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                  data: RunData | None = None) -> dict:
    cfg = with_command_defaults(cfg, "selftrain")
    st = cfg.selftrain
    check_selftrain_config(st)
    if st.init and cfg.train.init:
        raise InputError(f"--init {st.init} skips the supervised phase that --pretrained {cfg.train.init} would start: "
                         "give one of them")
    out = ensure_out_dir(out_dir)
    hw, dist = setup_compute(cfg.train)  # once; handed to every fit
    if not dist.is_main:
        log = _quiet
    init_ckpt = load_checkpoint(st.init, expect_arch=cfg.model.arch) if st.init else None  # before writing anything
    data = data or load_run_data(cfg, log)
    start = None  # the supervised phase's starting weights (--pretrained), when it is trained
    if _trains_supervised(cfg, out):
        start, cfg = pretrained_start(cfg, log)
    cfg = resolve(cfg, data, hw)
    if dist.is_main:
        save_run_config(cfg, out)
    run = Run(cfg, out, hw, dist, run_record(cfg), data, [Orig(s.mask, s.coords) for s in data.train], log)
    summary: dict = {**layout.summary_header("selftrain", None, None), "config": run.record, "iterations": [],
                     "warnings": []}

    model = _supervised_phase(run, init_ckpt, start)
    summary["baseline"], summary["baseline_particles"] = _val_metrics(run, model)
    teachers = [copy.deepcopy(model)]  # fit trains the model in place: the ensemble keeps copies
    for k in range(1, st.iterations + 1):
        model = _iteration(run, k, model, teachers if st.teacher == "ensemble" else [model], summary)
        if st.teacher == "ensemble":
            teachers.append(copy.deepcopy(model))
    _finish(run, summary)
    return summary


def _trains_supervised(cfg: RunConfig, out: Path) -> bool:
    """Whether phase 1 trains a model: not with ``--init`` (given) nor on a resume past it."""
    return not cfg.selftrain.init and not (cfg.train.resume and (out / layout.BASELINE_MODEL).exists())


def _supervised_phase(run: Run, init_ckpt: dict | None, start=None):
    """Phase 1: the supervised model (trained from ``start``'s weights when given, else from
    scratch; or the given / resumed one), saved as baseline_model.pt."""
    cfg, out, st, log = run.cfg, run.out, run.cfg.selftrain, run.log
    baseline = out / layout.BASELINE_MODEL
    if st.init:
        model = model_from_checkpoint(init_ckpt, st.init)
        if run.main and not baseline.exists():
            save_checkpoint(make_checkpoint(model, run.data.prep, config=run.record, epoch=0, history=[]), baseline)
        log(f"starting from {st.init}{start_note(init_ckpt)}")
    elif not _trains_supervised(cfg, out):
        model = model_from_checkpoint(load_checkpoint(baseline), baseline)
        log(f"resuming: supervised phase already done ({baseline})")
    else:
        log("phase 1: supervised training")
        fit(run.data.train, run.data.val, run.data.prep, cfg.model, cfg.train, out / layout.SUPERVISED, model=start,
            run_config=run.record, log=log, hw=run.hw, dist=run.dist)
        if run.main:
            save_checkpoint(load_checkpoint(out / layout.SUPERVISED / layout.BEST_MODEL), baseline)
            store_threshold([baseline], run.data.val, cfg, log, run.device)  # so the baseline picks at its own calibrated threshold
        ddist.barrier()
        model = model_from_checkpoint(load_checkpoint(baseline), baseline)
    return model.to(run.device)


def _val_metrics(run: Run, model) -> tuple[dict | None, dict | None]:
    """(pixel metrics, particle AP / best F1) on the validation micrographs, or (None, None)."""
    if not run.data.val:
        return None, None
    pixel, particles = validate(model, run.data.val, run.device, run.data.prep, run.cfg.train.tile_size, amp=run.amp)
    return pixel.as_dict(), ({"ap": particles.ap, "f1": particles.best_f1} if particles is not None else None)


def _iteration(run: Run, k: int, model, teachers: list, summary: dict):
    """Iteration k: pseudo-label with ``teachers``, retrain ``model``; returns the iteration's model."""
    cfg, st, log = run.cfg, run.cfg.selftrain, run.log
    it_path = run.out / layout.iteration_model(k)
    if cfg.train.resume and it_path.exists():
        ckpt = load_checkpoint(it_path)
        summary["iterations"].append(ckpt.get("selftrain_stats", {"iteration": k}))
        log(f"resuming: iteration {k} already done ({it_path})")
        return model_from_checkpoint(ckpt, it_path).to(run.device)
    pos, neg = thresholds_for(k, st.iterations, st)
    what = (f"thresholds positive {pos:.3f}, negative {neg:.3f}" if st.pseudo_labels == "pixels" else
            f"particle pseudo-labels ({st.pseudo_fraction:g} of the missing count)")
    log(f"self-training iteration {k}/{st.iterations}: {what}")
    loss = retrain_loss(cfg)
    stats = relabel(run, teachers, pos, neg, pu=loss == "pu")
    log(f"  pseudo-positive {stats['pseudo_positive']:.2f}%  reliable-negative {stats['reliable_negative']:.2f}%  "
        f"ignored {stats['ignored']:.2f}%  agreement with labels {stats['label_agreement']:.3f}"
        + (f"  pseudo-particles {stats['pseudo_particles']} of {stats['wanted_particles']} wanted"
           if st.pseudo_labels == "particles" else ""))
    prior = _retrain_prior(run, loss)
    train_cfg = iteration_train_config(cfg, k, loss, prior)
    folder = run.out / layout.iteration_dir(k)
    result = fit(run.data.train, run.data.val, run.data.prep, cfg.model, train_cfg, folder, model=model,
                 epochs=st.retrain_epochs, run_config=run.record, log=lambda m: log("  " + m), hw=run.hw, dist=run.dist)
    model = result.model
    best = folder / layout.BEST_MODEL
    if st.iteration_model == "best" and run.data.val and best.exists():
        model = model_from_checkpoint(load_checkpoint(best), best).to(run.device)
    pixel, particles = _val_metrics(run, model)
    stats.update({"iteration": k, "positive_threshold": pos, "negative_threshold": neg, "retrain_loss": loss,
                  "pu_prior": prior, "train_loss": result.history[-1]["train_loss"] if result.history else None,
                  "validation": pixel, "validation_particles": particles})
    stats["warnings"] = warnings = _health(stats, result.history, st.pseudo_labels)
    for w in warnings:
        log(f"  warning: {w}")
    summary["iterations"].append(stats)
    summary["warnings"] += [f"iteration {k}: {w}" for w in warnings]
    if run.main:
        ckpt = make_checkpoint(model, run.data.prep, config=run.record, epoch=k, history=result.history,
                               selftrain_stats=stats)
        save_checkpoint(ckpt, it_path)
        layout.write_summary(run.out, summary)
    return model


def iteration_train_config(cfg: RunConfig, k: int, loss: str, prior: float | None) -> TrainConfig:
    """Iteration ``k``'s training settings: its own seed, loss, prior and learning rate; early
    stopping only where the best epoch is handed on (a stopped run's last epoch is not the full run's)."""
    st = cfg.selftrain
    return dataclasses.replace(cfg.train, seed=cfg.train.seed + k, loss=loss, pu_prior=prior,
                               lr=st.retrain_lr or RETRAIN_LR_SCALE * cfg.train.lr,
                               patience=cfg.train.patience if st.iteration_model == "best" else 0)


def retrain_loss(cfg: RunConfig) -> str:
    """The loss of the iterations: ``auto`` keeps positive-unlabelled learning when the supervised
    phase used it (the expected count or a prior is known), else ``combined``."""
    loss = cfg.selftrain.retrain_loss
    if loss == "auto":
        return "pu" if cfg.train.loss == "pu" else "combined"
    return loss


def _retrain_prior(run: Run, loss: str) -> float | None:
    """PU prior on the relabelled masks: pseudo-particles count as labelled, so it shrinks."""
    if loss != "pu":
        return run.cfg.train.pu_prior
    per_mic = run.cfg.data.particles_per_micrograph
    if not per_mic:
        return run.cfg.train.pu_prior
    return pu_prior([s.mask for s in run.data.train if s.mask is not None], per_mic, run.data.prep.mask_radius)


def _finish(run: Run, summary: dict) -> None:
    """Choose final_model.pt among the baseline and the iterations; log which and how good."""
    out, st = run.out, run.cfg.selftrain
    final = out / layout.FINAL_MODEL
    candidates = [out / layout.BASELINE_MODEL] + [out / layout.iteration_model(k) for k in range(1, st.iterations + 1)]
    chosen, threshold, scores = len(candidates) - 1, None, {}
    if run.main:
        chosen, threshold, scores = _select_final(candidates, run.data.val, run.cfg, st.select_final, run.log, run.device)
        save_checkpoint(load_checkpoint(candidates[chosen]), final)
    chosen, threshold, scores = ddist.broadcast_object((chosen, threshold, scores))
    summary["pick_threshold"], summary["final_iteration"] = threshold, chosen
    summary["shipped"] = candidate_name(chosen)
    summary["candidates"] = scores
    if run.data.val:
        summary["final"] = summary["iterations"][chosen - 1]["validation"] if chosen else summary["baseline"]
    summary["final_particles"] = summary["validation_particles"] = scores.get(summary["shipped"])
    run.log(closing_line(summary))
    if run.main:
        layout.write_summary(out, summary)
    ddist.barrier()


def candidate_name(k: int) -> str:
    return "baseline" if k == 0 else f"iteration {k}"


def closing_line(summary: dict) -> str:
    """Which candidate became final_model.pt, with its validation particle F1 / AP against the baseline's."""
    shipped = summary.get("shipped") or candidate_name(summary.get("final_iteration") or 0)
    n = len(summary.get("iterations", []))
    fin, base = summary.get("final_particles"), (summary.get("candidates") or {}).get("baseline")
    if not fin:
        return f"shipped {shipped} of {n} iteration(s) (no labelled validation micrographs to compare them)"
    text = f"shipped {shipped} of {n} iteration(s): validation particle F1 {fin['f1']:.3f}, AP {fin['ap']:.3f}"
    if base and shipped != "baseline":
        text += f" (supervised baseline F1 {base['f1']:.3f}, AP {base['ap']:.3f})"
    elif shipped == "baseline" and n:
        text += " (no iteration beat the supervised baseline on validation)"
    return text


def _select_final(candidates: list[Path], val: list[Sample], cfg: RunConfig, select: bool,
                  log: Callable[[str], None], device=None) -> tuple[int, float | None, dict]:
    """Index of the model that becomes final_model.pt (0 = the supervised baseline), its
    calibrated pick threshold, and every scored candidate's validation particle F1 / AP. With
    ``select``, the candidate with the best particle F1 on the validation micrographs wins
    (later iterations win ties): self-training that did not help on held-out micrographs is
    not shipped. Otherwise the last iteration."""
    if not any(s.coords is not None for s in val):
        return len(candidates) - 1, None, {}
    scores, table = [], {}
    for k, path in enumerate(candidates):
        if not select and k < len(candidates) - 1:
            continue
        calib = store_threshold([path], val, cfg, lambda m, k=k: log(f"  {candidate_name(k)}: {m}"), device)
        table[candidate_name(k)] = calib.scores
        scores.append((calib.scores["f1"], k, calib.threshold))
    best_f1, k, thr = max(scores)
    return k, thr, table


def _quiet(message: str) -> None:
    """The log of ranks other than 0: silent."""


def _health(stats: dict, history: list[dict], mode: str = "particles") -> list[str]:
    """Warning signs of one iteration, each naming the flag that addresses it. The training loss is
    compared within the iteration (its targets change between iterations, so across them it
    says nothing); the ignored share only in pixel mode (particle mode ignores most pixels by design)."""
    w = []
    losses = [h["train_loss"] for h in history if h.get("train_loss") is not None]
    if len(losses) >= 2 and losses[-1] > losses[0]:
        w.append(f"training loss rose during the iteration ({losses[0]:.4f} -> {losses[-1]:.4f}); consider a lower --lr")
    if stats["pseudo_positive"] > 50:
        flag = "raise --positive-threshold" if mode == "pixels" else "lower --pseudo-fraction or --particles-per-micrograph"
        w.append(f"pseudo-positive coverage {stats['pseudo_positive']:.1f}% > 50%; {flag}")
    if mode == "pixels" and stats["ignored"] > 50:
        w.append(f"ignored pixels {stats['ignored']:.1f}% > 50%; narrow the band (lower --positive-threshold or "
                 "raise --negative-threshold), or use --pseudo-labels particles")
    wanted, got = stats.get("wanted_particles", 0), stats.get("pseudo_particles", 0)
    if mode == "particles" and wanted and got < 0.5 * wanted:
        w.append(f"only {got} of {wanted} wanted pseudo-particles were found as peaks; check "
                 "--particles-per-micrograph (expected particles per micrograph)")
    return w
