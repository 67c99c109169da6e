"""Typed run configuration: dataclasses, YAML round trip, and the values chosen per device.

A run's resolved configuration is written as ``config.yaml`` next to its outputs; a
``--config FILE.yaml`` holds the same sections (``data``, ``model``, ``train``,
``selftrain``, ``pick``) and command-line flags override it.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


@dataclass
class DataConfig:
    images: list[str] = field(default_factory=list)  # MICS: files, directories, globs, or a zarr dataset dir
    labels: str | None = None  # label file or directory (any supported format)
    val_images: list[str] = field(default_factory=list)
    val_labels: str | None = None
    label_format: str | None = None  # None: guessed per file
    radius: float | None = None  # particle radius in original-micrograph px; None: half the labels' diameter
    mask_radius_scale: float = 0.6  # target disk radius = radius * scale (0.6: touching particles stay apart; see README)
    split_touching: float = 0.0  # overlapping target disks are cut apart by a background line this x the target radius wide
    downsample: float | None = None  # None: auto, so that a particle spans 20-40 px
    normalize: str = "robust"  # a name in preprocess.NORMALIZATIONS
    val_fraction: float = 0.2  # share of micrographs held out when no --val-images are given
    particles_per_micrograph: float | None = None  # expected particles per micrograph (as Topaz's -n): enables PU learning


@dataclass
class ModelConfig:
    arch: str = "unet"  # a name in models.ARCHITECTURES
    base_features: int | None = None  # None: 64 on CUDA (the seeds), 16 on CPU


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"  # a name in schedulers.SCHEDULERS
    t0: int = 10  # warm restarts: first period (epochs)
    t_mult: int = 2
    eta_min: float = 1e-6
    loss: str = "auto"  # auto or a name in losses.REGISTRY (auto: pu when an expected particle count is known)
    pu_prior: float | None = None  # pu: share of unlabelled pixels that are particle; None: from particles_per_micrograph
    focal_weight: float = 0.7
    dice_weight: float = 0.3
    focal_alpha: float | None = 0.25
    focal_gamma: float = 2.0
    augment: bool = True
    augment_domain: bool = False  # also zoom and blur (domain randomisation: the general model)
    balanced_sampling: bool = True
    positive_share: float = 0.5  # balanced sampling: share of patches that contain a particle
    patch_size: int | None = None  # None: 256 on CUDA, 128 on CPU
    patches_per_epoch: int | None = None  # None: enough to cover the training area once, >= min_patches_per_epoch
    # the floor of that default: one or two labelled micrographs still get enough optimizer steps
    # (benchmarks/results/levers.md, few-label regime)
    min_patches_per_epoch: int = 128
    eval_every: int = 1
    ema_epochs: float | None = None  # validate, keep and pick with a moving average of the weights over ~N epochs
    # (0: off); None: the command's default (COMMAND_DEFAULTS)
    patience: int | None = None  # stop once validation has not improved for this many epochs (0: every epoch);
    # None: the command's default (COMMAND_DEFAULTS)
    seed: int = 42
    ensemble: int | None = None  # networks with seeds seed, seed+1, ...; picking averages their maps (cryopick.ensemble);
    # None: the command's default (COMMAND_DEFAULTS)
    device: str = "auto"
    num_workers: int = 0  # DataLoader worker processes (persistent across epochs when > 0)
    amp: bool | None = None  # mixed precision (bf16, else fp16 + GradScaler); None: on for CUDA, off for CPU
    channels_last: bool | None = None  # NHWC activations; None: on for CUDA, off for CPU
    compile: bool = False  # torch.compile the training model (first epoch slower; needs a C++ compiler on CPU)
    tile_size: int = 1024  # inference tiles for validation / prediction (a 1024 px micrograph in one piece)
    resume: bool = False
    init: str | None = None  # start weights: a checkpoint file, "general" (the shipped model), or None (from scratch)


# TrainConfig options whose default depends on the command. ``train`` ships a seed ensemble of
# weight-averaged networks: above one network on the validation micrographs of every benchmark
# set (benchmarks/results/levers.md, "seed ensembles"); selftrain and compare train one network
# per run, with the raw weights (the average lowered self-training on sparse labels). ``train``
# and ``selftrain`` stop a network 8 epochs after its best validation epoch: replayed on the
# benchmark's default runs (33 train networks, 18 selftrain phases) that kept every best epoch
# (levers.md, "early stopping"); compare trains the epochs it is given (a fixed budget per variant).
COMMAND_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"ensemble": 3, "ema_epochs": 2.0, "patience": 8},
    "selftrain": {"ensemble": 1, "ema_epochs": 0.0, "patience": 8},
    "compare": {"ensemble": 1, "ema_epochs": 0.0, "patience": 0},
}


def with_command_defaults(cfg: "RunConfig", command: str) -> "RunConfig":
    """``cfg`` with the TrainConfig options left None set to ``command``'s defaults."""
    unset = {k: v for k, v in COMMAND_DEFAULTS[command].items() if getattr(cfg.train, k) is None}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **unset)) if unset else cfg


@dataclass
class SelfTrainConfig:  # defaults chosen on validation micrographs: benchmarks/results/selftrain_ideas.md
    iterations: int = 2
    retrain_epochs: int = 10
    positive_threshold: float = 0.95
    negative_threshold: float = 0.05
    dynamic_thresholds: bool = False
    dynamic_start: tuple[float, float] = (0.98, 0.02)  # (positive, negative) at the first iteration
    dynamic_end: tuple[float, float] = (0.90, 0.10)  # ... at the last
    protect_ring: float = 0.5  # around each labelled particle, radius*(1+ring) is never made negative
    init: str | None = None  # start from this checkpoint instead of a supervised phase
    retrain_loss: str = "auto"  # auto: pu (pseudo-particles join the labelled set) when the count is known, else combined
    rescale: bool = True  # pixel mode: thresholds act on each map stretched to its 1-99 percentile range
    select_final: bool = True  # final_model.pt = best validation particle F1 among baseline and iterations
    pseudo_labels: str = "particles"  # particles: top-k peaks painted as disks | pixels: the seed's thresholds
    pseudo_fraction: float = 0.5  # particles: share of the missing count (expected - labelled) taken per micrograph
    background_score: float = 0.5  # particles: background only below this x the k-th pseudo-particle's score
    iteration_model: str = "best"  # best: each iteration's epoch with the best validation particle AP | last
    teacher: str = "last"  # last: the latest model labels | ensemble: mean of the baseline and all iterations
    retrain_lr: float | None = None  # learning rate of the iterations; None: 0.3 x --lr


PICK_SCORES = ("peak", "mean")  # PickConfig.score (see peaks.find_peaks)


@dataclass
class PickConfig:
    threshold: float | None = None  # None: the checkpoint's calibrated threshold
    min_distance: float | None = None  # px, original micrograph; None: half the particle radius (see picking)
    smooth: float = 0.15  # Gaussian smoothing of the map before peak finding, sigma as a fraction of the radius
    score: str = "peak"  # peak: smoothed map at the peak | mean: map averaged over the target disk
    tta: bool = False  # average the 8 flips/rotations of each tile (8x the network time)
    min_area: int = 0
    tile_size: int = 1024  # px after downsampling; a 1024 px micrograph is one tile (no seams, 1.7x faster than 512)
    overlap: int = 64
    batch_size: int = 1  # tiles per forward pass (one 1024 px tile holds as many pixels as four of 512)
    formats: list[str] = field(default_factory=lambda: ["star"])
    box_size: int | None = None
    downsample: float | None = None  # None: the checkpoint's
    radius: float | None = None  # particle radius, original px; None: the checkpoint's (the general model needs it)
    edge_margin: float = 1.0  # drop peaks closer than this many radii to the micrograph's edge (cut particles)
    exclude_edge: bool = True  # .box output: drop boxes that extend past the micrograph's edge
    pixel_size: float | None = None  # Å/px; given: picks.star gets the data_optics block of RELION 3.1+
    progress_seconds: float = 30.0  # without a terminal: a progress line at most this often
    poll_seconds: float = 5.0  # live mode (--watch): how often the folder is listed
    idle_timeout: float | None = None  # live mode: stop after this many seconds without a new micrograph


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    selftrain: SelfTrainConfig = field(default_factory=SelfTrainConfig)
    pick: PickConfig = field(default_factory=PickConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "RunConfig":
        return _from_dict(cls, d or {}, source)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _from_dict(cls, d: dict[str, Any], source: str):
    if not isinstance(d, dict):
        raise InputError(f"{source}: expected a mapping for {cls.__name__}, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise InputError(f"{source}: unknown option(s) {', '.join(unknown)} in {cls.__name__}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in d.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            value = _from_dict(type(default), value, source)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return RunConfig.from_dict(d or {}, source=str(path))


def run_record(config: RunConfig) -> dict[str, Any]:
    """What a run writes as config.yaml: the resolved config, the version and the command line."""
    from . import __version__

    return {"cryopick_version": __version__, "command": " ".join(sys.argv), **config.to_dict()}


def save_run_config(config: RunConfig, out_dir: str | Path) -> Path:
    from .io.atomic import atomic_write_text

    path = Path(out_dir) / "config.yaml"
    atomic_write_text(path, yaml.safe_dump(run_record(config), sort_keys=False))
    return path
