"""Learning-rate schedules: each declared once, with its builder, help and table description.

``train.make_scheduler``, the ``--scheduler`` choices and help, ``TrainConfig`` checking and
the values ``compare --vary scheduler=...`` accepts derive from :data:`SCHEDULERS`.
Adding a schedule: one builder and one :class:`Scheduler` entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError
from .registry import by_name, help_text


def _cosine(opt: torch.optim.Optimizer, cfg: Any, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.eta_min)


def _warm_restarts(opt: torch.optim.Optimizer, cfg: Any, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.t0, T_mult=cfg.t_mult, eta_min=cfg.eta_min)


@dataclass(frozen=True)
class Scheduler:
    """``build(optimizer, train_config, epochs)``; ``describe(train_options)`` is the line of a
    comparison table (``train_options``: the ``train`` section as a dict)."""

    name: str
    build: Callable[[torch.optim.Optimizer, Any, int], Any]
    help: str
    describe: Callable[[dict[str, Any]], str]


SCHEDULERS: dict[str, Scheduler] = by_name(
    Scheduler("cosine", _cosine, "cosine annealing over the run to --eta-min", lambda t: "CosineAnnealingLR"),
    Scheduler("warm-restarts", _warm_restarts, "cosine with warm restarts every --t0 epochs, x --t-mult",
              lambda t: f"CosineAnnealingWarmRestarts (T0 {t['t0']}, T_mult {t['t_mult']})"),
)
SCHEDULER_HELP = help_text(SCHEDULERS)


def get_scheduler(name: str) -> Scheduler:
    """The registered schedule ``name``; InputError naming the known ones otherwise."""
    if name not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; choose {' or '.join(SCHEDULERS)}")
    return SCHEDULERS[name]
