"""Every option value checked before any work: one InputError line naming the flag that fixes it.

A value may come from a flag or from ``--config FILE.yaml``; the message names the flag
(and the config key, which is where it came from when no flag was given).
"""

from __future__ import annotations

import math
from typing import Any

from ..config import PickConfig, RunConfig
from ..errors import InputError

SEED_MAX = 2**32 - 1  # numpy seeds are 32-bit
MIN_TILE = 32  # the network downsamples 16x; tiles are rounded up to a multiple of 16


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# rule -> (test, what the value must be)
RULES: dict[str, tuple[Any, str]] = {
    "positive": (lambda v: _finite(v) and v > 0, "a finite number above 0"),
    "nonnegative": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "probability": (lambda v: _finite(v) and 0 <= v <= 1, "a probability between 0 and 1"),
    "open_share": (lambda v: _finite(v) and 0 < v < 1, "a share between 0 and 1 (both excluded)"),
    "fraction": (lambda v: _finite(v) and 0 <= v < 1, "a share from 0 up to (not including) 1"),
    "finite": (_finite, "a finite number"),
    "count": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "count0": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "tile": (lambda v: _whole(v) and v >= MIN_TILE, f"a whole number of pixels >= {MIN_TILE}"),
    "seed": (lambda v: _whole(v) and 0 <= v <= SEED_MAX, f"a whole number from 0 to {SEED_MAX}"),
}


def check_value(value: Any, flag: str, rule: str, hint: str = "") -> None:
    """Raise one line when ``value`` (not None) breaks ``rule``; ``flag`` is what fixes it
    (a flag, or for settings only a config file has, ``SECTION.FIELD in --config``)."""
    if value is None:
        return
    test, must = RULES[rule]
    if not test(value):
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        raise InputError(f"{flag} is {shown} but must be {must}{hint}")


# (section, field, flag, rule); the flag is None for settings only a --config file has
_RUN_RULES = [
    ("data", "radius", "--radius", "positive"), ("data", "downsample", "--downsample", "positive"),
    ("data", "mask_radius_scale", "--mask-radius-scale", "positive"),
    ("data", "split_touching", "--split-touching", "nonnegative"),
    ("data", "val_fraction", "--val-fraction", "fraction"),
    ("data", "particles_per_micrograph", "--particles-per-micrograph", "positive"),
    ("model", "base_features", "--base-features", "count"),
    ("train", "epochs", "--epochs", "count"), ("train", "batch_size", "--batch-size", "count"),
    ("train", "lr", "--lr", "positive"), ("train", "weight_decay", "--weight-decay", "nonnegative"),
    ("train", "t0", "--t0", "count"), ("train", "t_mult", "--t-mult", "count"),
    ("train", "eta_min", "--eta-min", "nonnegative"), ("train", "pu_prior", "--pu-prior", "open_share"),
    ("train", "focal_weight", "--focal-weight", "nonnegative"), ("train", "dice_weight", "--dice-weight", "nonnegative"),
    ("train", "focal_gamma", "--focal-gamma", "nonnegative"), ("train", "focal_alpha", "--focal-alpha", "probability"),
    ("train", "positive_share", "--positive-share", "probability"), ("train", "patch_size", "--patch-size", "tile"),
    ("train", "patches_per_epoch", "--patches-per-epoch", "count"), ("train", "eval_every", "--eval-every", "count"),
    ("train", "ema_epochs", "--ema-epochs", "nonnegative"), ("train", "ensemble", "--ensemble", "count"),
    ("train", "patience", "--patience", "count0"),
    ("train", "seed", "--seed", "seed"), ("train", "num_workers", "--num-workers", "count0"),
    ("train", "tile_size", None, "tile"),
    ("selftrain", "iterations", "--iterations", "count0"), ("selftrain", "retrain_epochs", "--retrain-epochs", "count"),
    ("selftrain", "positive_threshold", "--positive-threshold", "probability"),
    ("selftrain", "negative_threshold", "--negative-threshold", "probability"),
    ("selftrain", "protect_ring", None, "nonnegative"),
]


def check_run_config(cfg: RunConfig, selftrain: bool = False) -> None:
    """Options of ``train`` / ``selftrain`` (and ``compare``), before any micrograph is read."""
    for section, name, flag, rule in _RUN_RULES:
        if section == "selftrain" and not selftrain:
            continue
        check_value(getattr(getattr(cfg, section), name), flag or f"{section}.{name} in --config", rule)
    st = cfg.selftrain
    if selftrain and cfg.train.ensemble > 1:
        raise InputError(f"train.ensemble {cfg.train.ensemble} in --config: ensembles are trained by `cryopick train "
                         "--ensemble N`; selftrain and compare train one network per run (set it to 1)")
    if selftrain and not st.dynamic_thresholds and not st.negative_threshold < st.positive_threshold:
        raise InputError(f"--negative-threshold {st.negative_threshold:g} must be below --positive-threshold "
                         f"{st.positive_threshold:g} (pixels between the two are ignored)")
    if selftrain:
        for key in ("dynamic_start", "dynamic_end"):
            for v in getattr(st, key):
                check_value(v, f"selftrain.{key} in --config", "probability")


def check_pick_config(cfg: PickConfig, seed: int | None = None) -> None:
    """Options of ``pick``, before any model or micrograph is read."""
    check_value(cfg.threshold, "--threshold", "probability", hint=" (picks score 0 to 1; leave it out for the "
                "checkpoint's calibrated threshold)")
    check_value(cfg.box_size, "--box-size", "count", hint=" (the box side in pixels for .box output)")
    check_value(cfg.min_distance, "--min-distance", "positive")
    check_value(cfg.min_area, "--min-area", "count0")
    check_value(cfg.edge_margin, "--edge-margin", "nonnegative", hint=" (in particle radii; 0 keeps edge picks)")
    check_value(cfg.smooth, "--smooth", "nonnegative", hint=" (sigma as a fraction of the radius; 0: no smoothing)")
    check_value(cfg.tile_size, "--tile-size", "tile")
    check_value(cfg.batch_size, "--batch-size", "count")
    check_value(cfg.downsample, "--downsample", "positive", hint="; leave it out to use the checkpoint's")
    check_value(getattr(cfg, "radius", None), "--radius", "positive", hint=" (particle radius in micrograph pixels)")
    check_value(seed, "--seed", "seed")
