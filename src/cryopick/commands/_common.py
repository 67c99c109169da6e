"""Flags every command shares, and the mapping of flags onto the typed config."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from ..config import RunConfig, TrainConfig, load_config
from ..errors import InputError
from ..io.formats import FORMAT_HELP, FORMATS
from ..losses import LOSS_CHOICES, LOSS_HELP
from ..models import ARCH_HELP, ARCHITECTURES
from ..preprocess import NORMALIZATIONS, NORMALIZE_HELP
from ..schedulers import SCHEDULER_HELP, SCHEDULERS

BOOL = argparse.BooleanOptionalAction
_T = TrainConfig()  # the defaults quoted in the help texts


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="read options from a YAML file (flags override it)")
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {_T.seed})")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default auto)")


def add_label_format(p, what: str = "label file format") -> None:
    """``--label-format``, its choices and help from the format registry."""
    p.add_argument("--label-format", choices=list(FORMATS), help=f"{what} (default: guessed per file): {FORMAT_HELP}")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--images", nargs="+", required=required, metavar="MICS",
                   help="micrograph files, directories or globs (MRC/TIFF/PNG/JPG), or a zarr dataset directory")
    g.add_argument("--labels", metavar="LABELS", help="label file or directory (STAR, CryoPPP CSV, .box, Topaz TSV, JSON, mask images)")
    g.add_argument("--val-images", nargs="+", metavar="MICS", help="validation micrographs (default: hold out a share)")
    g.add_argument("--val-labels", metavar="LABELS", help="labels of --val-images (same formats as --labels)")
    add_label_format(g)
    g.add_argument("--radius", type=float, help="particle radius in original micrograph pixels (default: half the labels' diameter)")
    g.add_argument("--downsample", type=float, help="downsampling factor (default: auto, the smallest integer that brings particles to <= 40 px)")
    g.add_argument("--normalize", choices=list(NORMALIZATIONS),
                   help=f"micrograph normalisation (default robust): {NORMALIZE_HELP}")
    g.add_argument("--mask-radius-scale", type=float, help="target disk radius as a fraction of the particle radius (default 0.6)")
    g.add_argument("--split-touching", type=float, metavar="WIDTH",
                   help="cut a background line WIDTH x the target radius wide between overlapping target disks, so "
                        "crowded particles closer than two target radii stay two (default 0: off)")
    g.add_argument("--val-fraction", type=float,
                   help="share of the labelled micrographs held out for validation when no --val-images are given "
                        "(default 0.2; at least one when two or more are labelled)")
    g.add_argument("--particles-per-micrograph", type=float,
                   help="expected particles per micrograph (as Topaz's -n); turns on positive-unlabelled learning "
                        "for sparse labels")


def add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--arch", choices=list(ARCHITECTURES), help=f"network (default unet): {ARCH_HELP}")
    g.add_argument("--base-features", type=int, help="base width (default 64 on CUDA as in the seeds, 16 on CPU)")
    g.add_argument("--patch-size", type=int, help="training patch side in px (default 256 on CUDA, 128 on CPU)")
    g.add_argument("--patches-per-epoch", type=int,
                   help=f"training patches per epoch (default: enough to cover the training area once, at least "
                        f"{_T.min_patches_per_epoch})")
    g.add_argument("--epochs", type=int, help=f"most epochs per network (default {_T.epochs}; see --patience)")
    g.add_argument("--batch-size", type=int, help=f"patches per optimizer step (default {_T.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {_T.lr:g})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {_T.weight_decay:g})")
    g.add_argument("--scheduler", choices=list(SCHEDULERS),
                   help=f"learning-rate schedule (default cosine): {SCHEDULER_HELP}")
    g.add_argument("--t0", type=int, help="warm restarts: first period in epochs (default 10)")
    g.add_argument("--t-mult", type=int, help=f"warm restarts: period growth factor (default {_T.t_mult})")
    g.add_argument("--eta-min", type=float, help=f"learning rate at the end of a cosine period (default {_T.eta_min:g})")
    g.add_argument("--loss", choices=list(LOSS_CHOICES),
                   help="auto (default): pu (positive-unlabelled) when --particles-per-micrograph is given, else "
                        f"combined; {LOSS_HELP}")
    g.add_argument("--pu-prior", type=float, help="pu loss: share of unlabelled pixels that are particle (default: estimated)")
    g.add_argument("--focal-weight", type=float, help=f"combined loss: weight of the focal term (default {_T.focal_weight:g})")
    g.add_argument("--dice-weight", type=float, help=f"combined loss: weight of the Dice term (default {_T.dice_weight:g})")
    g.add_argument("--focal-alpha", type=float,
                   help=f"focal / combined loss: weight of particle pixels, background gets 1 - alpha "
                        f"(default {_T.focal_alpha:g})")
    g.add_argument("--focal-gamma", type=float,
                   help=f"focal / combined loss: focusing exponent, 0 = weighted BCE (default {_T.focal_gamma:g})")
    g.add_argument("--augment", action=BOOL, default=None, help="CryoEM augmentation (default on)")
    g.add_argument("--balanced-sampling", action=BOOL, default=None, help="batches hold a set share of patches with particles")
    g.add_argument("--positive-share", type=float,
                   help=f"balanced sampling: share of patches that hold a particle (default {_T.positive_share:g})")
    g.add_argument("--eval-every", type=int, help=f"validate every N epochs (default {_T.eval_every})")
    g.add_argument("--ema-epochs", type=float,
                   help="validate, save and pick with a moving average of the weights over about this many epochs "
                        "(0: the raw weights; default 2 for train, 0 for selftrain and compare)")
    g.add_argument("--patience", type=int,
                   help="stop a network once validation (particle AP; pixel F1 for mask labels) has not improved "
                        "for this many epochs; the best epoch is kept (0: train every epoch; default 8, 0 for "
                        "compare; selftrain's iterations only with --iteration-model best)")
    g.add_argument("--num-workers", type=int, help=f"data-loading worker processes (default {_T.num_workers}: in the main process)")
    g.add_argument("--amp", action=BOOL, default=None,
                   help="mixed precision on CUDA: bf16, or fp16 with loss scaling (default on for CUDA, off on CPU)")
    g.add_argument("--channels-last", action=BOOL, default=None, help="NHWC memory format (default on for CUDA)")
    g.add_argument("--compile", action=BOOL, default=None, help="torch.compile the model for training (default off)")
    g.add_argument("--resume", action="store_true", default=None, help="continue from OUT/model.pt")
    g.add_argument("--pretrained", dest="init_weights", metavar="CKPT",
                   help="start the weights from this checkpoint, or 'general' (the model shipped with cryopick)")


def add_selftrain_args(p: argparse.ArgumentParser, title: str = "self-training") -> None:
    g = p.add_argument_group(title)
    g.add_argument("--iterations", type=int, help="self-training iterations (default 2)")
    g.add_argument("--retrain-epochs", type=int, help="epochs per iteration (default 10)")
    g.add_argument("--positive-threshold", type=float, help="pseudo-positive above this probability (default 0.95)")
    g.add_argument("--negative-threshold", type=float, help="reliable negative below this probability (default 0.05)")
    g.add_argument("--dynamic-thresholds", action=BOOL, default=None,
                   help="relax thresholds linearly over iterations (0.98->0.90, 0.02->0.10)")
    g.add_argument("--rescale", action=BOOL, default=None,
                   help="apply the thresholds to each map stretched to its 1-99 percentile range (default on)")
    g.add_argument("--pseudo-labels", choices=["particles", "pixels"],
                   help="particles (default): the top-k peaks per micrograph, k = --particles-per-micrograph minus the "
                        "labelled ones, become disks; pixels: the seed's probability thresholds")
    g.add_argument("--pseudo-fraction", type=float,
                   help="particles: share of the missing particles taken as pseudo-labels (default 0.5)")
    g.add_argument("--background-score", type=float,
                   help="particles: pixels are background only below this fraction of the k-th peak's score (default 0.5)")
    g.add_argument("--retrain-loss", choices=list(LOSS_CHOICES),
                   help="loss of the iterations; auto (default): pu with pseudo-particles as labelled when "
                        "--particles-per-micrograph is given, else combined")
    g.add_argument("--iteration-model", choices=["best", "last"],
                   help="model an iteration hands on: its epoch with the best validation particle AP (default) or its last")
    g.add_argument("--teacher", choices=["last", "ensemble"],
                   help="who pseudo-labels: the latest model (default) or the mean of the baseline and every iteration")
    g.add_argument("--retrain-lr", type=float, help="learning rate of the iterations (default 0.3 x --lr)")
    g.add_argument("--init", metavar="CKPT", help="skip the supervised phase and start from this checkpoint")
    g.add_argument("--select-final", action=BOOL, default=None,
                   help="final_model.pt is the baseline or iteration with the best validation particle F1 "
                        "(default on; off: the last iteration)")


# flag name -> (section, field)
FLAG_MAP = {
    "images": ("data", "images"), "labels": ("data", "labels"), "val_images": ("data", "val_images"),
    "val_labels": ("data", "val_labels"), "label_format": ("data", "label_format"), "radius": ("data", "radius"),
    "downsample": ("data", "downsample"), "normalize": ("data", "normalize"),
    "mask_radius_scale": ("data", "mask_radius_scale"), "split_touching": ("data", "split_touching"),
    "val_fraction": ("data", "val_fraction"),
    "particles_per_micrograph": ("data", "particles_per_micrograph"),
    "arch": ("model", "arch"), "base_features": ("model", "base_features"), "init_weights": ("train", "init"),
    "seed": ("train", "seed"), "device": ("train", "device"), "ensemble": ("train", "ensemble"),
    **{k: ("train", k) for k in ["patch_size", "patches_per_epoch", "epochs", "batch_size", "lr", "weight_decay",
                                 "scheduler", "t0", "t_mult", "eta_min", "loss", "focal_weight", "dice_weight",
                                 "focal_alpha", "focal_gamma",
                                 "augment", "balanced_sampling", "positive_share", "eval_every", "ema_epochs", "patience", "num_workers", "pu_prior",
                                 "amp", "channels_last", "compile", "resume"]},
    **{k: ("selftrain", k) for k in ["iterations", "retrain_epochs", "positive_threshold", "negative_threshold",
                                     "dynamic_thresholds", "init", "rescale", "select_final", "pseudo_labels",
                                     "pseudo_fraction", "background_score", "retrain_loss", "iteration_model",
                                     "teacher", "retrain_lr"]},
}


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp``, and the value to keep (numbers written as
    text, e.g. ``1e-3`` which YAML 1.1 reads as a string, become floats; one string becomes a list)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for a in args:
            ok, v = _type_ok(value, a)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if origin is list:
        if isinstance(value, str) and args and args[0] is str:
            value = [value]
        if not isinstance(value, list):
            return False, value
        items = [_type_ok(v, args[0]) if args else (True, v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or (args and len(value) != len(args)):
            return False, value
        items = [_type_ok(v, a) for v, a in zip(value, args)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    return True, value


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is tuple:
        return f"a list of {len(args)} numbers"
    return {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a text"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def check_config_types(cfg: Any, source: str, section: str = "") -> None:
    """Raise one InputError line for the first option of the wrong type (e.g. ``epochs: many``)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{section}.{f.name}" if section else f.name
        if dataclasses.is_dataclass(value):
            check_config_types(value, source, name)
            continue
        ok, fixed = _type_ok(value, hints[f.name])
        if not ok:
            raise InputError(f"{source}: option {name} is {value!r} but must be {_describe(hints[f.name])}; "
                             "fix the config file")
        setattr(cfg, f.name, fixed)


def read_config_file(path: str) -> RunConfig:
    """``--config FILE.yaml`` as a typed RunConfig; every problem is one InputError line."""
    import yaml

    try:
        yaml.safe_load(Path(path).read_text())  # for the line of a syntax error; load_config reports the rest
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        hint = "indent with spaces, not tabs" if "\\t" in problem else "fix the syntax"
        raise InputError(f"{path}{where}: not valid YAML ({problem}); {hint}") from None
    except (OSError, UnicodeDecodeError):
        pass  # reported below
    try:
        cfg = load_config(path)
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise InputError(f"{path}: cannot read the config file ({why}); give a YAML file") from None
    except TypeError as e:  # a value the dataclasses reject
        raise InputError(f"{path}: not a usable config ({e}); fix the config file") from None
    check_config_types(cfg, path)
    return cfg


def config_from_args(args: argparse.Namespace, extra: dict[str, tuple[str, str]] | None = None) -> RunConfig:
    """YAML (if --config) overridden by every flag that was given."""
    cfg = read_config_file(args.config) if getattr(args, "config", None) else RunConfig()
    for flag, (section, name) in {**FLAG_MAP, **(extra or {})}.items():
        value: Any = getattr(args, flag, None)
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    return cfg
