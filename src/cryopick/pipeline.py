"""The steps commands share: load a run's data, train, calibrate the picking threshold."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import distributed as ddist
from . import runlayout as layout
from .checkpoint import load_checkpoint, save_checkpoint
from .config import DataConfig, RunConfig, TrainConfig, run_record, save_run_config, with_command_defaults
from .data import LoadedData, Preprocessing, Sample, check_pixel_sizes, load_samples, split_train_val
from .device import DeviceSettings, resolve_device, settings_for
from .errors import CheckpointError, InputError
from .ensemble import check_resume as check_ensemble_resume, finish_ensemble, started_size, train_members
from .io.atomic import ensure_out_dir, remove_stale_temps
from .io.outdir import RUN_OUTPUTS, clear_outputs, matcher
from .metrics import ParticleMetrics
from .models import UNetFamily
from .picking import FALLBACK_THRESHOLD, Picker, calibrate_threshold
from .targets import pu_prior
from .train import FitResult, fit, resolve_model_config, resolve_train_config, setup_compute


RUN_FILES = layout.TRAIN_FILES  # what train_run writes


@dataclass
class RunData:
    train: list[Sample]  # labelled and unlabelled training micrographs
    val: list[Sample]
    prep: Preprocessing
    warnings: list[str]


def load_run_data(cfg: RunConfig, log: Callable[[str], None] = print) -> RunData:
    d = cfg.data
    if not d.images:
        raise InputError("no micrographs given: pass --images MICS")
    explicit_scale = d.downsample is not None  # --downsample given: mixed pixel sizes only warn
    loaded: LoadedData = load_samples(d.images, d.labels, radius=d.radius, downsample=d.downsample,
                                      normalize=d.normalize, mask_radius_scale=d.mask_radius_scale,
                                      split_touching=d.split_touching,
                                      label_format=d.label_format, allow_mixed_pixel_size=explicit_scale)
    warnings = list(loaded.warnings)
    if d.val_images:
        val_loaded = load_samples(d.val_images, d.val_labels or d.labels, radius=None, downsample=None,
                                  label_format=d.label_format, prep=loaded.prep, allow_mixed_pixel_size=explicit_scale)
        warnings += val_loaded.warnings
        warnings += check_pixel_sizes([(loaded.pixel_size_source, loaded.pixel_size),
                                       (val_loaded.pixel_size_source, val_loaded.pixel_size)], explicit_scale)[2]
        val = val_loaded.labelled
        train = loaded.samples
    else:
        train, val = split_train_val(loaded.samples, d.val_fraction, cfg.train.seed)
    if not any(s.coords is not None or s.mask is not None for s in val):
        warnings.append(no_validation_warning(train, bool(d.val_images), d.val_fraction))
    for w in warnings:
        log(f"warning: {w}")
    n_lab = sum(s.mask is not None for s in train)
    with_coords = [s for s in train if s.coords is not None]
    what = f"{sum(len(s.coords) for s in with_coords)} particles" if with_coords else "mask labels"
    log(f"data: {len(train)} training micrographs ({n_lab} labelled, {what}), {len(val)} validation; "
        f"downsample {loaded.prep.downsample:g}, particle radius {loaded.prep.radius:g} px "
        f"({loaded.prep.downsampled_radius:.1f} px after downsampling)")
    return RunData(train, val, loaded.prep, warnings)


def no_validation_warning(train: list[Sample], given: bool, val_fraction: float) -> str:
    why = ("the --val-images have no labels (pass --val-labels)" if given else
           f"{sum(s.mask is not None for s in train)} labelled micrograph(s) at --val-fraction {val_fraction:g} leave "
           "none to hold out")
    return (f"no labelled validation micrographs: {why}; there is no validation F1, best_model.pt is not chosen on "
            f"held-out data and picking falls back to threshold {FALLBACK_THRESHOLD:g}; pass --val-images MICS "
            "--val-labels LABELS")


def resolve(cfg: RunConfig, data: RunData, hw: DeviceSettings | None = None) -> RunConfig:
    """Fill the per-device defaults in, so config.yaml shows what actually ran.

    ``hw``: the device settings already resolved from ``cfg.train`` (default: resolved here)."""
    hw = hw or settings_for(cfg.train)
    resolved = dataclasses.replace(cfg)
    resolved.model = resolve_model_config(cfg.model, hw.device)
    resolved.train = resolve_train_config(cfg.train, hw.device, data.train)
    resolved.data = dataclasses.replace(cfg.data, radius=data.prep.radius, downsample=data.prep.downsample)
    resolved.train = resolve_loss(resolved.train, resolved.data, data)
    return resolved


def resolve_loss(train: TrainConfig, d: DataConfig, data: RunData) -> TrainConfig:
    """``auto`` becomes ``pu`` when the expected particle count (or the prior) is known, else ``combined``;
    the PU prior is estimated from the expected count and the labelled area.

    As Topaz does, ``auto`` stays ``combined`` when the labelled micrographs already hold the expected
    count: their unlabelled pixels are background, and a PU prior near 0 would weight the labelled
    particles by ~0 (one fully labelled micrograph + unlabelled ones: validation AP 0.69 -> 0.56).
    """
    loss, prior = train.loss, train.pu_prior
    if loss == "auto":
        labelled = [len(s.coords) for s in data.train if s.mask is not None and s.coords is not None]
        complete = bool(labelled) and np.mean(labelled) >= (d.particles_per_micrograph or np.inf)
        loss = "pu" if (prior is not None or (d.particles_per_micrograph and not complete)) else "combined"
    if loss == "pu" and prior is None:
        if not d.particles_per_micrograph:
            raise InputError("--loss pu needs --particles-per-micrograph (expected particles per micrograph, "
                             "as Topaz's -n) or --pu-prior")
        masks = [s.mask for s in data.train if s.mask is not None]
        prior = pu_prior(masks, d.particles_per_micrograph, data.prep.mask_radius)
    return dataclasses.replace(train, loss=loss, pu_prior=prior)


@dataclass(frozen=True)
class Calibration:
    """A model's pick threshold, calibrated on the labelled validation micrographs, and the
    validation particle metrics it was chosen on (``threshold`` None: no F1-optimal one)."""

    threshold: float | None
    metrics: ParticleMetrics

    @property
    def scores(self) -> dict:
        """Validation particle best F1 and AP (0 when undefined): what self-training selects on."""
        m = self.metrics.as_dict()  # NaN -> None -> 0
        return {"f1": m["best_f1"] or 0.0, "ap": m["ap"] or 0.0}


def store_threshold(paths: list[Path], val: list[Sample], cfg: RunConfig, log: Callable[[str], None] = print,
                    device: torch.device | None = None) -> Calibration | None:
    """Calibrate the pick threshold on labelled validation micrographs with the model in
    ``paths[0]`` and store it into every checkpoint in ``paths`` (``device``: default ``cfg.train.device``).

    Returns the calibration (None without validation coordinates); a checkpoint keeps its
    earlier threshold when no F1-optimal one is found. Pickers read the threshold from the
    checkpoint; the run itself uses the returned value."""
    if not any(s.coords is not None for s in val):
        return None
    picker = Picker.from_checkpoints([paths[0]], cfg.pick, device=device or resolve_device(cfg.train.device))
    threshold, metrics = calibrate_threshold(picker, val)
    calibration = Calibration(threshold, metrics)
    if threshold is None:
        return calibration
    for p in paths:
        if p.exists():
            ckpt = load_checkpoint(p)
            ckpt["pick_threshold"] = threshold
            ckpt["calibration"] = metrics.as_dict()
            save_checkpoint(ckpt, p)
    log(f"pick threshold {threshold:.3f} (validation particle F1 {metrics.best_f1:.3f}, AP {metrics.ap:.3f})")
    return calibration


def check_resume_point(cfg: RunConfig, path: Path) -> RunConfig:
    """Before ``--resume`` writes anything: the checkpoint at ``path`` (if any) must be usable
    and of the asked-for architecture and width. An unset ``--base-features`` takes the
    checkpoint's width (so a run started on one device resumes on another)."""
    if not path.exists():
        return cfg
    ckpt = load_checkpoint(path, expect_arch=cfg.model.arch)
    width = ckpt["arch"].get("base_features")
    if cfg.model.base_features is None:
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_features=width))
    if cfg.model.base_features != width:
        raise CheckpointError(f"{path}: checkpoint has base width {width} but --base-features {cfg.model.base_features} "
                              f"was asked for; pass --base-features {width} to resume, or train into a new folder")
    return cfg


def pretrained_start(cfg: RunConfig, log: Callable[[str], None] = print) -> tuple[UNetFamily | None, RunConfig]:
    """The model ``cfg.train.init`` names (``general``, a checkpoint, or None: from scratch);
    an unset ``--base-features`` takes its width."""
    from .pretrained import initial_model

    model = initial_model(cfg.train.init, cfg.model.arch, cfg.model.base_features, log)
    if model is not None and cfg.model.base_features is None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_features=model.architecture()["base_features"]))
    return model, cfg


def train_run(cfg: RunConfig, out_dir: str | Path, log: Callable[[str], None] = print,
              data: RunData | None = None, model: UNetFamily | None = None,
              overwrite: bool = False) -> tuple[FitResult, RunConfig]:
    """Supervised training of one run: data -> fit -> calibrated threshold -> summary.

    ``overwrite``: remove an earlier run's files from ``out_dir`` once the inputs are read
    and the configuration resolved (so a bad input keeps the earlier run)."""
    out = ensure_out_dir(out_dir)
    resuming = cfg.train.resume and (out / layout.MODEL).exists()
    if resuming and cfg.train.ensemble is None:  # continue the run as it was started
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, ensemble=started_size(out)))
    cfg = with_command_defaults(cfg, "train")
    data = data or load_run_data(cfg, log)
    if cfg.train.resume and model is None:
        check_ensemble_resume(out, cfg.train.ensemble)
        cfg = check_resume_point(cfg, out / layout.MODEL)
        remove_stale_temps(out, RUN_FILES)  # left by a killed run; harmless, but a resumed run ends tidy
    if model is None and not resuming:
        model, cfg = pretrained_start(cfg, log)
    hw, dist = setup_compute(cfg.train)  # once, handed down; under torchrun rank 0 writes
    cfg = resolve(cfg, data, hw)
    main = dist.is_main
    if main and overwrite:
        clear_outputs(out, matcher(RUN_OUTPUTS))
    ddist.barrier()
    if main:
        save_run_config(cfg, out)
    result = fit(data.train, data.val, data.prep, cfg.model, cfg.train, out, model=model, run_config=run_record(cfg),
                 log=log, hw=hw, dist=dist)
    if main:
        calibration = store_threshold([out / layout.BEST_MODEL, out / layout.MODEL], data.val, cfg, log, hw.device)
        threshold, scores = (calibration.threshold, calibration.scores) if calibration else (None, None)
    ensemble = None
    if cfg.train.ensemble > 1:  # members 2..N on every rank, then embedded into best_model.pt on the main one
        seeds = train_members(cfg, out, lambda c, d: train_run(c, d, log, data=data, overwrite=overwrite), log)
        if main:
            ensemble = finish_ensemble(cfg, out, seeds,
                                       lambda paths: store_threshold(paths, data.val, cfg, log, hw.device), log)
            threshold, scores = ensemble["pick_threshold"], ensemble["validation"]
    if main:
        layout.write_summary(out, {
            **layout.summary_header("train", threshold, scores),
            "best_f1": result.best_f1, "best_epoch": result.best_epoch, "parameters": result.parameters,
            "seconds_per_epoch": result.seconds_per_epoch, "final": result.history[-1] if result.history else None,
            **({"ensemble": ensemble} if ensemble else {})})
    ddist.barrier()  # other ranks see the calibrated checkpoints when this returns
    return result, cfg
