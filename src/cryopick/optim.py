"""What moves the weights: AdamW, the learning-rate schedule, the fp16 grad scaler, and an
exponential moving average of the weights (a "mean teacher" / Polyak average).

``fit`` keeps the average when ``TrainConfig.ema_epochs`` is set: after every optimizer step
it moves towards the trained weights by ``1 - decay``, with the decay chosen so the average
spans about ``ema_epochs`` epochs of steps (``decay = 1 - 1 / (epochs * steps)``), warmed up
as ``(1 + n) / (10 + n)`` over the first steps so the random initial weights fade out fast.
BatchNorm running statistics are averaged the same way; integer buffers (the batch
counters) are copied. Validation, ``best_model.pt`` and the picks use the average; training
continues on the raw weights, which ``model.pt`` keeps for ``--resume``.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import torch

from .config import TrainConfig
from .inference import amp_dtype
from .schedulers import get_scheduler


def make_grad_scaler(device: torch.device, amp: bool):
    """A GradScaler for fp16 autocast (GPUs without bf16); None when not needed (bf16, fp32, CPU)."""
    if amp and device.type == "cuda" and amp_dtype() == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, epochs: int):
    return get_scheduler(cfg.scheduler).build(opt, cfg, epochs)


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler=None) -> None:
    """Backward and step, through the fp16 grad scaler when there is one."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


class WeightAverage:
    """The averaged copy of ``net`` (``.module``), updated by :meth:`update` after each step."""

    def __init__(self, net: torch.nn.Module, horizon_steps: float):
        if horizon_steps < 1:
            raise ValueError(f"the averaging horizon must be >= 1 step, got {horizon_steps}")
        self.module = copy.deepcopy(net)
        self.module.requires_grad_(False)
        self.decay = 1.0 - 1.0 / horizon_steps
        self.steps = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        # state_dict tensors share storage with the modules: in-place updates land in self.module
        for avg, new in zip(self.module.state_dict().values(), net.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(new.to(avg.dtype), 1.0 - decay)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])


def make_weight_average(net: torch.nn.Module, ema_epochs: float | None, steps_per_epoch: int) -> WeightAverage | None:
    """A :class:`WeightAverage` spanning ``ema_epochs`` epochs, or None when averaging is off (None or 0)."""
    if not ema_epochs:
        return None
    return WeightAverage(net, max(1.0, ema_epochs * steps_per_epoch))
