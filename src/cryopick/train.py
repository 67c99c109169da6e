"""Supervised training: ``train_one_epoch``, ``evaluate``, and ``fit`` with checkpoints.

``fit`` trains a model on patches of labelled micrographs with AdamW and a cosine
schedule, evaluates pixel metrics on whole validation micrographs every
``eval_every`` epochs, and writes into ``out_dir``:

- ``model.pt``       last state, every epoch (resume point: model, optimizer, scheduler, epoch)
- ``best_model.pt``  best validation F1 (the last epoch when there is no validation set)
- ``metrics.json``   one record per evaluation (train loss, lr, precision, recall, F1, IoU, AUC)

A run is a pure function of its config and seed: the patch plan and the augmentation
of epoch e are drawn from (seed, e), so ``resume=True`` after a kill replays the
interrupted epoch and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .augment import default_train_transform
from .checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import PatchDataset, Preprocessing, Sample
from .errors import InputError
from .inference import autocast_context, predict_probability
from .io.atomic import atomic_write_json, ensure_out_dir
from .losses import build_loss
from .metrics import PixelAccumulator, PixelMetrics
from .models import UNetFamily, build_model, count_parameters


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device; use auto, cpu or cuda[:N]") from None


def resolve_model_config(cfg: ModelConfig, device: torch.device) -> ModelConfig:
    base = cfg.base_features or (64 if device.type == "cuda" else 16)
    if base < 1:
        raise InputError(f"--base-features must be positive, got {base}")
    return dataclasses.replace(cfg, base_features=base)


def resolve_train_config(cfg: TrainConfig, device: torch.device, samples: list[Sample]) -> TrainConfig:
    patch = cfg.patch_size or (256 if device.type == "cuda" else 128)
    smallest = min(min(s.image.shape) for s in samples if s.mask is not None)
    patch = max(32, min(patch, smallest - smallest % 16 if smallest >= 32 else 32))
    patch -= patch % 16
    n = cfg.patches_per_epoch
    if n is None:
        area = sum(s.image.size for s in samples if s.mask is not None)
        n = max(cfg.batch_size * 2, int(math.ceil(area / patch**2)))
        n = int(math.ceil(n / cfg.batch_size) * cfg.batch_size)
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise InputError(f"--lr must be positive, got {cfg.lr}")
    if cfg.scheduler not in ("cosine", "warm-restarts"):
        raise InputError(f"unknown scheduler {cfg.scheduler!r}; choose cosine or warm-restarts")
    return dataclasses.replace(cfg, patch_size=patch, patches_per_epoch=n)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, epochs: int):
    if cfg.scheduler == "warm-restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.t0, T_mult=cfg.t_mult, eta_min=cfg.eta_min)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.eta_min)


def train_one_epoch(model, loader, loss_fn, opt, device, amp: bool = False, desc: str = "train") -> float:
    model.train()
    total, count = 0.0, 0
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported() else None
    for img, mask in tqdm(loader, desc=desc, leave=False, disable=None):
        img, mask = img.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        with autocast_context(device, amp):
            logits = model(img)
        loss = loss_fn(logits.float(), mask)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        total += loss.item() * len(img)
        count += len(img)
    return total / max(count, 1)


def evaluate(model, samples: list[Sample], device, tile: int = 512, threshold: float = 0.5,
             amp: bool = False) -> PixelMetrics:
    """Pixel metrics over whole (labelled) micrographs, predicted tile by tile."""
    acc = PixelAccumulator(threshold=threshold)
    for s in samples:
        if s.mask is None:
            continue
        prob = predict_probability(model, s.image, tile=tile, device=device, amp=amp)
        acc.update(prob, s.mask)
    return acc.compute()


@dataclass
class FitResult:
    model: UNetFamily
    history: list[dict] = field(default_factory=list)
    best_f1: float | None = None
    best_epoch: int | None = None
    seconds_per_epoch: float = 0.0
    parameters: int = 0


def fit(train: list[Sample], val: list[Sample], prep: Preprocessing, model_cfg: ModelConfig, cfg: TrainConfig,
        out_dir: str | Path, *, model: UNetFamily | None = None, epochs: int | None = None,
        run_config: dict | None = None, prefix: str = "", log: Callable[[str], None] = print) -> FitResult:
    """Train (or fine-tune ``model``) for ``epochs`` (default ``cfg.epochs``); see the module docstring.

    ``prefix`` names the checkpoint files (``{prefix}model.pt`` ...) so self-training
    iterations can keep theirs apart.
    """
    out = ensure_out_dir(out_dir)
    device = resolve_device(cfg.device)
    epochs = epochs or cfg.epochs
    seed_everything(cfg.seed)
    if model is None:
        model = build_model(model_cfg.arch, model_cfg.base_features)
    model.to(device)
    if cfg.amp and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    dataset = PatchDataset(train, cfg.patch_size, cfg.patches_per_epoch, cfg.seed, default_train_transform(cfg.augment),
                           positive_share=cfg.positive_share if cfg.balanced_sampling else None,
                           batch_size=cfg.batch_size)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda")
    loss_fn = build_loss(cfg.loss, cfg.focal_weight, cfg.dice_weight, cfg.focal_alpha, cfg.focal_gamma)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, epochs)
    last_path, best_path, metrics_path = out / f"{prefix}model.pt", out / f"{prefix}best_model.pt", out / f"{prefix}metrics.json"

    start, history, best_f1, best_epoch = 1, [], None, None
    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path, expect_arch=model_cfg.arch)
        model.load_state_dict(model_from_checkpoint(ckpt, last_path).state_dict())
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start = ckpt["epoch"] + 1
        history, best_f1, best_epoch = ckpt.get("history", []), ckpt.get("best_f1"), ckpt.get("best_epoch")
        log(f"resuming {last_path} from epoch {start}")

    def checkpoint(epoch: int) -> dict:
        return make_checkpoint(model, prep, config=run_config or {}, epoch=epoch, history=history,
                               best_f1=best_f1, best_epoch=best_epoch, optimizer=opt.state_dict(),
                               scheduler=sched.state_dict())

    times = []
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        dataset.set_epoch(epoch)
        loss = train_one_epoch(model, loader, loss_fn, opt, device, cfg.amp, desc=f"{prefix}epoch {epoch}/{epochs}")
        lr = opt.param_groups[0]["lr"]
        sched.step()
        times.append(time.perf_counter() - t0)
        record = {"epoch": epoch, "train_loss": loss, "lr": lr, "seconds": times[-1]}
        improved = False
        if val and (epoch % cfg.eval_every == 0 or epoch == epochs):
            m = evaluate(model, val, device, cfg.tile_size, amp=cfg.amp)
            record.update(m.as_dict())
            if best_f1 is None or m.f1 > best_f1:
                best_f1, best_epoch, improved = m.f1, epoch, True
            log(f"{prefix}epoch {epoch}/{epochs}  loss {loss:.4f}  val P {m.precision:.3f} R {m.recall:.3f} "
                f"F1 {m.f1:.3f} IoU {m.iou:.3f} AUC {m.auc:.3f}")
        else:
            log(f"{prefix}epoch {epoch}/{epochs}  loss {loss:.4f}")
        history.append(record)
        if not val:
            best_epoch, improved = epoch, True
        ckpt = checkpoint(epoch)
        if improved:
            save_checkpoint(ckpt, best_path)
        save_checkpoint(ckpt, last_path)
        atomic_write_json(metrics_path, history)

    return FitResult(model, history, best_f1, best_epoch, float(np.mean(times)) if times else 0.0,
                     count_parameters(model))
