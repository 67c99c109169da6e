"""Flags every command shares, and the mapping of flags onto the typed config."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import RunConfig, load_config

BOOL = argparse.BooleanOptionalAction


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="read options from a YAML file (flags override it)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default auto)")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--images", nargs="+", required=required, metavar="MICS",
                   help="micrograph files, directories or globs (MRC/TIFF/PNG/JPG), or a zarr dataset directory")
    g.add_argument("--labels", metavar="LABELS", help="label file or directory (STAR, CryoPPP CSV, .box, Topaz TSV, JSON, mask images)")
    g.add_argument("--val-images", nargs="+", metavar="MICS", help="validation micrographs (default: hold out a share)")
    g.add_argument("--val-labels", metavar="LABELS")
    g.add_argument("--label-format", choices=["star", "cryosparc", "box", "topaz", "csv", "json"])
    g.add_argument("--radius", type=float, help="particle radius in original micrograph pixels (default: half the labels' diameter)")
    g.add_argument("--downsample", type=float, help="downsampling factor (default: auto, particles ~28 px across)")
    g.add_argument("--normalize", choices=["robust", "zscore", "none"])
    g.add_argument("--mask-radius-scale", type=float, help="target disk radius as a fraction of the particle radius (default 1)")
    g.add_argument("--val-fraction", type=float)


def add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--arch", choices=["unet", "attention-unet"])
    g.add_argument("--base-features", type=int, help="base width (default 64 on CUDA as in the seeds, 16 on CPU)")
    g.add_argument("--patch-size", type=int, help="training patch side in px (default 256 on CUDA, 128 on CPU)")
    g.add_argument("--patches-per-epoch", type=int)
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--scheduler", choices=["cosine", "warm-restarts"])
    g.add_argument("--t0", type=int, help="warm restarts: first period in epochs (default 10)")
    g.add_argument("--t-mult", type=int)
    g.add_argument("--eta-min", type=float)
    g.add_argument("--loss", choices=["bce", "focal", "dice", "combined"])
    g.add_argument("--focal-weight", type=float)
    g.add_argument("--dice-weight", type=float)
    g.add_argument("--augment", action=BOOL, default=None, help="CryoEM augmentation (default on)")
    g.add_argument("--balanced-sampling", action=BOOL, default=None, help="batches hold a set share of patches with particles")
    g.add_argument("--positive-share", type=float)
    g.add_argument("--eval-every", type=int)
    g.add_argument("--num-workers", type=int)
    g.add_argument("--amp", action=BOOL, default=None, help="mixed precision on CUDA")
    g.add_argument("--resume", action="store_true", default=None, help="continue from OUT/model.pt")


# flag name -> (section, field)
FLAG_MAP = {
    "images": ("data", "images"), "labels": ("data", "labels"), "val_images": ("data", "val_images"),
    "val_labels": ("data", "val_labels"), "label_format": ("data", "label_format"), "radius": ("data", "radius"),
    "downsample": ("data", "downsample"), "normalize": ("data", "normalize"),
    "mask_radius_scale": ("data", "mask_radius_scale"), "val_fraction": ("data", "val_fraction"),
    "arch": ("model", "arch"), "base_features": ("model", "base_features"),
    "seed": ("train", "seed"), "device": ("train", "device"),
    **{k: ("train", k) for k in ["patch_size", "patches_per_epoch", "epochs", "batch_size", "lr", "weight_decay",
                                 "scheduler", "t0", "t_mult", "eta_min", "loss", "focal_weight", "dice_weight",
                                 "augment", "balanced_sampling", "positive_share", "eval_every", "num_workers",
                                 "amp", "resume"]},
    **{k: ("selftrain", k) for k in ["iterations", "retrain_epochs", "positive_threshold", "negative_threshold",
                                     "dynamic_thresholds", "init"]},
}


def config_from_args(args: argparse.Namespace, extra: dict[str, tuple[str, str]] | None = None) -> RunConfig:
    """YAML (if --config) overridden by every flag that was given."""
    cfg = load_config(args.config) if getattr(args, "config", None) else RunConfig()
    for flag, (section, name) in {**FLAG_MAP, **(extra or {})}.items():
        value: Any = getattr(args, flag, None)
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    return cfg
