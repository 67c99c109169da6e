"""Supervised training: ``train_one_epoch``, ``evaluate``, and ``fit`` with checkpoints.

``fit`` trains a model on patches of labelled micrographs with AdamW and a cosine
schedule, evaluates pixel metrics on whole validation micrographs every
``eval_every`` epochs, and writes into ``out_dir`` (names: :mod:`cryopick.runlayout`)
``model.pt`` every epoch (the resume point: model, optimizer, scheduler, epoch),
``best_model.pt`` at the best validation particle AP (pixel F1 when the validation labels
are masks without coordinates, the last epoch without validation) and ``metrics.json``;
with ``patience`` it stops once validation has not improved for that many epochs.

A run is a pure function of its config and seed: the patch plan and the augmentation
of epoch e are drawn from (seed, e), so ``resume=True`` after a kill replays the
interrupted epoch and ends where an uninterrupted run ends.

Speed options (``TrainConfig``): ``amp`` (bf16 autocast, or fp16 with a GradScaler on
GPUs without bf16), ``channels_last`` (NHWC), both on by default on CUDA and off on CPU
(the CPU path stays float32 and deterministic); ``compile`` (``torch.compile``, off by
default); ``num_workers`` DataLoader processes, kept alive across epochs, with pinned
memory on CUDA.

Under ``torchrun`` (see ``cryopick.distributed``) the model is wrapped in
DistributedDataParallel with synchronised BatchNorm, each rank trains on its slice of
every global batch (``batch_size`` is the global batch, ``batch_size // world`` per rank),
validation micrographs are sharded and their pixel counts summed, and rank 0 alone
writes the files. Each rank's loss is weighted by its share of the global batch's valid
(non-ignored) pixels, so for the per-pixel losses (bce, focal) a step equals the
single-process step up to float summation order; Dice (and so ``combined``) is a ratio
over the batch and the nnPU risk has a non-negative correction per batch: both are
computed per rank, which makes them close to but not exactly the single-process value.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed as ddist
from . import runlayout as layout
from .augment import default_train_transform
from .checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import PatchDataset, Preprocessing, Sample
from .device import DeviceSettings, resolve_settings, settings_for
from .device import resolve_channels_last as resolve_channels_last  # re-exported: callers import them from here
from .device import resolve_device as resolve_device
from .errors import InputError
from .inference import autocast_context, predict_probability
from .io.atomic import ensure_out_dir
from .losses import loss_from_config
from .metrics import ParticleMetrics, PixelAccumulator, PixelMetrics
from .models import UNetFamily, build_model, count_parameters
from .optim import make_grad_scaler, make_optimizer, make_scheduler, make_weight_average, optimizer_step
from .optim import seed_everything as seed_everything  # re-exported
from .schedulers import get_scheduler


def resolve_model_config(cfg: ModelConfig, device: torch.device) -> ModelConfig:
    base = cfg.base_features or (64 if device.type == "cuda" else 16)
    if base < 1:
        raise InputError(f"--base-features must be positive, got {base}")
    return dataclasses.replace(cfg, base_features=base)


def resolve_train_config(cfg: TrainConfig, device: torch.device, samples: list[Sample]) -> TrainConfig:
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    patch = cfg.patch_size or (256 if device.type == "cuda" else 128)
    smallest = min(min(s.image.shape) for s in samples if s.mask is not None)
    patch = max(32, min(patch, smallest - smallest % 16 if smallest >= 32 else 32))
    patch -= patch % 16
    n = cfg.patches_per_epoch
    if n is None:
        area = sum(s.image.size for s in samples if s.mask is not None)
        n = max(cfg.batch_size * 2, cfg.min_patches_per_epoch, int(math.ceil(area / patch**2)))
        n = int(math.ceil(n / cfg.batch_size) * cfg.batch_size)
    if cfg.lr <= 0:
        raise InputError(f"--lr must be positive, got {cfg.lr}")
    get_scheduler(cfg.scheduler)
    if cfg.num_workers < 0:
        raise InputError(f"--num-workers must be >= 0, got {cfg.num_workers}")
    world = ddist.env_world_size()
    if world > 1:  # clear errors before any work: the global batch must split evenly, every rank take the same steps
        ddist.GlobalBatchSampler(n, cfg.batch_size, 0, world)
    hw = resolve_settings(device, cfg.amp, cfg.channels_last)
    return dataclasses.replace(cfg, patch_size=patch, patches_per_epoch=n, amp=hw.amp, channels_last=hw.channels_last)


def train_one_epoch(model, loader, loss_fn, opt, device, amp: bool = False, desc: str = "train", *,
                    scaler=None, channels_last: bool = False, progress: bool = True,
                    after_step: Callable[[], None] | None = None) -> float:
    """One pass over ``loader``; the mean training loss per patch (over all ranks when distributed).

    ``scaler``: a GradScaler kept across epochs (fp16); made here when ``amp`` needs one and
    none is given. Distributed, each rank's loss is weighted by n_valid_rank * world /
    n_valid_global so that DDP's gradient average is the gradient of the global batch's
    per-pixel mean. ``after_step`` is called after every optimizer step (the weight average).
    """
    model.train()
    device = torch.device(device)
    world = ddist.world_size()
    total, count = 0.0, 0
    if scaler is None:
        scaler = make_grad_scaler(device, amp)
    for img, mask in tqdm(loader, desc=desc, leave=False, disable=None if progress else True):
        img, mask = img.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        if channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            logits = model(img)
        loss = loss_fn(logits.float(), mask)
        n = len(img)
        if world > 1:
            n_valid = (mask >= 0).sum().to(torch.float64)
            sums = ddist.all_reduce_tensor(torch.stack([n_valid, loss.detach().to(torch.float64) * n_valid]))
            n_global = sums[0].clamp_min(1)
            batch_loss = (sums[1] / n_global).item()
            loss = loss * (n_valid * world / n_global).to(loss.dtype)
            n *= world
        optimizer_step(loss, opt, scaler)
        if after_step is not None:
            after_step()
        total += (batch_loss if world > 1 else loss.item()) * n
        count += n
    return total / max(count, 1)


def evaluate(model, samples: list[Sample], device, tile: int = 512, threshold: float = 0.5,
             amp: bool = False, distributed: bool | None = None, batch_size: int = 4,
             channels_last: bool = False) -> PixelMetrics:
    """Pixel metrics over whole (labelled) micrographs; see :func:`validate`."""
    return validate(model, samples, device, None, tile, threshold, amp, distributed, batch_size, channels_last)[0]


def validate(model, samples: list[Sample], device, prep: Preprocessing | None, tile: int = 512,
             threshold: float = 0.5, amp: bool = False, distributed: bool | None = None, batch_size: int = 4,
             channels_last: bool = False) -> tuple[PixelMetrics, ParticleMetrics | None]:
    """Pixel metrics over whole (labelled) micrographs, predicted tile by tile.

    ``distributed`` (default: whenever a process group of more than one rank exists): each
    rank predicts its shard of the micrographs and the counts are summed over ranks, so
    every rank returns the metrics of the whole set. Every rank must then call it.
    ``model`` should be the bare module, not the DDP wrapper.

    With ``prep`` and samples that carry particle coordinates, the same maps are also
    picked (the picker's peak finding) and the particle metrics (AP, best F1) come second;
    ``None`` without coordinates or when distributed (the ranks would each hold a shard).
    """
    from .metrics import evaluate_picks
    from .picking import Picker

    if distributed is None:
        distributed = ddist.is_distributed()
    labelled = [s for s in samples if s.mask is not None]
    acc = PixelAccumulator(threshold=threshold)
    picker = Picker([model], prep, device=device) if prep is not None else None
    picks, truth = {}, {}
    for s in (ddist.shard(labelled) if distributed else labelled):
        prob = predict_probability(model, s.image, tile=tile, device=device, amp=amp, batch_size=batch_size,
                                   channels_last=channels_last)
        acc.update(prob, s.mask)
        if picker is not None and s.coords is not None:
            picks[s.name], truth[s.name] = picker.peaks(prob), s.coords
    if distributed:
        ddist.all_reduce_accumulator(acc)
    particles = evaluate_picks(picks, truth, prep.downsampled_radius)[0] if truth and not distributed else None
    return acc.compute(), particles


@dataclass
class FitResult:
    model: UNetFamily
    history: list[dict] = field(default_factory=list)
    best_f1: float | None = None
    best_epoch: int | None = None
    seconds_per_epoch: float = 0.0
    parameters: int = 0


def setup_compute(cfg: TrainConfig, hw: DeviceSettings | None = None) -> tuple[DeviceSettings, ddist.DistInfo]:
    """Where a run computes, set up once: the device settings (from ``cfg`` unless given) and,
    under torchrun, the process group this process joins (single-process: rank 0 of 1).
    ``train_run`` and ``selftrain_run`` call it and hand both to :func:`fit`."""
    hw = hw or settings_for(cfg)
    return hw, ddist.init_from_env(hw.device)


def fit(train: list[Sample], val: list[Sample], prep: Preprocessing, model_cfg: ModelConfig, cfg: TrainConfig,
        out_dir: str | Path, *, model: UNetFamily | None = None, epochs: int | None = None,
        run_config: dict | None = None, prefix: str = "", log: Callable[[str], None] = print,
        hw: DeviceSettings | None = None, dist: ddist.DistInfo | None = None) -> FitResult:
    """Train (or fine-tune ``model``) for ``epochs`` (default ``cfg.epochs``); see the module docstring.

    ``hw`` / ``dist``: the device settings and process group as set up by the caller
    (:func:`setup_compute`; by default set up here from ``cfg``).

    ``prefix`` names the checkpoint files (``{prefix}model.pt`` ...) so self-training
    iterations can keep theirs apart. Under torchrun every rank calls ``fit`` with the same
    arguments; all return the same (bare, non-DDP) model and history.
    """
    if hw is None or dist is None:
        hw, dist = setup_compute(cfg, hw)
    run = _Fit(ensure_out_dir(out_dir), prefix, prep, cfg, hw, dist, epochs or cfg.epochs, run_config or {},
               log if dist.is_main else _quiet)
    seed_everything(cfg.seed)
    run.build(train, model_cfg, model)
    if cfg.resume and run.last_path.exists():
        run.resume(model_cfg.arch)
    train_model = run.distribute()
    times = []
    try:
        for epoch in range(run.start, run.epochs + 1):
            if run.stalled(epoch - 1, bool(val)):
                break
            times.append(run.train_epoch(train_model, epoch))
            improved = run.validate_epoch(val, epoch, times[-1])
            if dist.is_main:  # one writer; the others wait at the barrier so no rank reads a file before it exists
                run.save(epoch, improved)
            ddist.barrier()
    finally:
        if dist.world > 1:
            run.net = ddist.unsync_batchnorm(run.net)
            if run.ema is not None:
                run.ema.module = ddist.unsync_batchnorm(run.ema.module)
    return FitResult(run.eval_net, run.history, run.best_f1, run.best_epoch, float(np.mean(times)) if times else 0.0,
                     count_parameters(run.net))


@dataclass
class _Fit:
    """One :func:`fit`: its settings, the training objects, and where it stands (history, best epoch)."""

    out: Path
    prefix: str
    prep: Preprocessing
    cfg: TrainConfig
    hw: DeviceSettings
    dist: ddist.DistInfo
    epochs: int
    run_config: dict
    log: Callable[[str], None]
    start: int = 1
    history: list[dict] = field(default_factory=list)
    best_f1: float | None = None
    best_epoch: int | None = None
    best_score: float | None = None  # particle AP, or pixel F1 without coordinates

    @property
    def last_path(self) -> Path:
        return self.out / f"{self.prefix}{layout.MODEL}"

    def build(self, train: list[Sample], model_cfg: ModelConfig, model: UNetFamily | None) -> None:
        """The network (on its device), the patch loader, loss, optimizer, schedule and grad scaler."""
        cfg, device = self.cfg, self.hw.device
        if model is None:
            model = build_model(model_cfg.arch, model_cfg.base_features)
        self.net = model.to(device)
        if self.hw.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.dataset = PatchDataset(train, cfg.patch_size, cfg.patches_per_epoch, cfg.seed,
                                    default_train_transform(cfg.augment, cfg.augment_domain),
                                    positive_share=cfg.positive_share if cfg.balanced_sampling else None,
                                    batch_size=cfg.batch_size)
        self.sampler = ddist.GlobalBatchSampler(len(self.dataset), cfg.batch_size, self.dist.rank, self.dist.world)
        self.loader = DataLoader(ddist.EpochDataset(self.dataset), batch_size=self.sampler.local, sampler=self.sampler,
                                 num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                 persistent_workers=cfg.num_workers > 0)
        self.loss_fn = loss_from_config(cfg)
        self.opt = make_optimizer(self.net, cfg)
        self.sched = make_scheduler(self.opt, cfg, self.epochs)
        self.scaler = make_grad_scaler(device, self.hw.amp)
        self.ema = make_weight_average(self.net, cfg.ema_epochs, len(self.loader))

    @property
    def eval_net(self) -> UNetFamily:
        """The network that is validated, saved as the model and returned: the weight average when kept."""
        return self.ema.module if self.ema is not None else self.net

    def resume(self, arch: str) -> None:
        """Continue from ``{prefix}model.pt``: weights, optimizer, schedule, scaler and history."""
        path, sched = self.last_path, self.sched
        ckpt = load_checkpoint(path, expect_arch=arch)
        weights = model_from_checkpoint(ckpt, path).state_dict()
        if self.ema is not None and "ema" in ckpt:  # the model is the average; training goes on from the raw weights
            self.ema.module.load_state_dict(weights)
            self.ema.load_state_dict(ckpt["ema"])
            weights = ckpt["train_weights"]
        self.net.load_state_dict(weights)
        self.opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if getattr(sched, "T_max", self.epochs) != self.epochs:  # the cosine keeps the length the run started with
            self.log(f"warning: resuming a run started with {sched.T_max} epochs; the learning-rate schedule keeps "
                     f"that length (now --epochs {self.epochs}); train into a new folder for a new schedule")
        if self.scaler is not None and ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.start = ckpt["epoch"] + 1
        self.history, self.best_f1, self.best_epoch = ckpt.get("history", []), ckpt.get("best_f1"), ckpt.get("best_epoch")
        self.best_score = ckpt.get("best_score", self.best_f1)
        self.log(f"resuming {path} from epoch {self.start}")

    def distribute(self) -> torch.nn.Module:
        """The module to train: DDP over synchronised BatchNorm under torchrun, compiled with ``compile``."""
        train_model: torch.nn.Module = self.net
        world = self.dist.world
        if world > 1:
            self.net = ddist.sync_batchnorm(self.net, self.hw.device)
            train_model = DistributedDataParallel(
                self.net, device_ids=[self.hw.device.index] if self.hw.device.type == "cuda" else None,
                **_no_buffer_sync())
            self.log(f"{self.prefix}distributed: {world} processes ({self.dist.backend}), global batch "
                     f"{self.cfg.batch_size} = {world} x {self.sampler.local}")
        if self.cfg.compile:
            train_model = torch.compile(train_model)
        return train_model

    def train_epoch(self, train_model: torch.nn.Module, epoch: int) -> float:
        """One epoch of training and its schedule step; its duration in seconds."""
        t0 = time.perf_counter()
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.loss = train_one_epoch(train_model, self.loader, self.loss_fn, self.opt, self.hw.device, self.hw.amp,
                                    desc=f"{self.prefix}epoch {epoch}/{self.epochs}", scaler=self.scaler,
                                    channels_last=self.hw.channels_last, progress=self.dist.is_main,
                                    after_step=None if self.ema is None else lambda: self.ema.update(self.net))
        self.lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        return time.perf_counter() - t0

    def validate_epoch(self, val: list[Sample], epoch: int, seconds: float) -> bool:
        """Record the epoch (validated every ``eval_every`` epochs and at the last); whether it is the new best."""
        record = {"epoch": epoch, "train_loss": self.loss, "lr": self.lr, "seconds": seconds}
        improved = False
        head = f"{self.prefix}epoch {epoch}/{self.epochs}  loss {self.loss:.4f}"
        if val and (epoch % self.cfg.eval_every == 0 or epoch == self.epochs):
            m, pm = validate(self.eval_net, val, self.hw.device, self.prep, self.cfg.tile_size, amp=self.hw.amp,
                             channels_last=self.hw.channels_last)
            record.update(m.as_dict())
            if pm is not None:
                record.update(particle_ap=pm.ap, particle_f1=pm.best_f1)
            score = pm.ap if pm is not None else m.f1  # select on particle AP when coordinates are known
            if self.best_score is None or score > self.best_score:
                self.best_score, self.best_f1, self.best_epoch, improved = score, m.f1, epoch, True
            particles = f"  particle AP {pm.ap:.3f} F1 {pm.best_f1:.3f}" if pm is not None else ""
            self.log(f"{head}  val P {m.precision:.3f} R {m.recall:.3f} F1 {m.f1:.3f} IoU {m.iou:.3f} "
                     f"AUC {m.auc:.3f}{particles}")
        else:
            self.log(head)
        self.history.append(record)
        if not val:
            self.best_epoch, improved = epoch, True
        return improved

    def stalled(self, done: int, validated: bool) -> bool:
        """:func:`patience_spent`, logged; checked before each epoch, so a stopped run resumed stops at once."""
        if not (validated and patience_spent(done, self.best_epoch, patience := self.cfg.patience or 0)):
            return False
        self.log(f"{self.prefix}stopping after epoch {done}: validation has not improved for {done - self.best_epoch} "
                 f"epochs (best epoch {self.best_epoch}; --patience {patience}, 0 trains every epoch)")
        return True

    def save(self, epoch: int, improved: bool) -> None:
        """``{prefix}model.pt`` (and ``{prefix}best_model.pt`` when ``improved``) and the history."""
        extra = {"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        if self.ema is not None:
            extra.update(ema=self.ema.state_dict(), train_weights={k: v.detach().cpu() for k, v in self.net.state_dict().items()})
        ckpt = make_checkpoint(self.eval_net, self.prep, config=self.run_config, epoch=epoch, history=self.history,
                               best_f1=self.best_f1, best_epoch=self.best_epoch, best_score=self.best_score,
                               optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(), **extra)
        if improved:
            save_checkpoint(ckpt, self.out / f"{self.prefix}{layout.BEST_MODEL}")
        save_checkpoint(ckpt, self.last_path)
        layout.write_history(self.out, self.history, self.prefix)


def patience_spent(done: int, best_epoch: int | None, patience: int) -> bool:
    """Early stopping: whether ``patience`` (> 0) epochs have passed since ``best_epoch`` after ``done``."""
    return bool(patience) and best_epoch is not None and done - best_epoch >= patience


def _no_buffer_sync() -> dict:
    """DDP option that skips re-broadcasting buffers before every forward: the synchronised
    BatchNorm keeps its running statistics identical on all ranks anyway."""
    import inspect

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


def _quiet(message: str) -> None:
    """The log of ranks other than 0: silent."""
