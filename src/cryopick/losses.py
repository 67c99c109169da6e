"""Segmentation losses from logits, all honouring an ignore mask.

Targets hold 1 (particle), 0 (background) or values in between (soft labels), and
IGNORE (-1) for pixels that must not contribute: ignored pixels get exactly zero
gradient. Each loss is a pure function plus a thin ``nn.Module`` (:class:`MaskedLoss`).
:data:`REGISTRY` declares every loss once (function, options, help); ``build_loss``, the
CLI's ``--loss``/``--retrain-loss`` choices and ``compare``'s accepted values derive from it.
Adding a loss: its function here and one :class:`Loss` entry in :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError
from .registry import by_name, help_text

IGNORE = -1.0


def _valid(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (valid mask as float, target with ignored pixels set to 0, number of valid pixels >= 1)."""
    valid = target >= 0
    t = torch.where(valid, target, torch.zeros_like(target))
    return valid.to(target.dtype), t, valid.sum().clamp_min(1)


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the non-ignored pixels."""
    valid, t, n = _valid(target)
    per_px = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return (per_px * valid).sum() / n


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float | None = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) averaged over non-ignored pixels.

    FL = -alpha_t (1 - p_t)^gamma log(p_t); alpha weights positives (1 - alpha negatives),
    ``alpha=None`` disables the class weighting. With gamma=0 and alpha=None it is BCE.
    """
    valid, t, n = _valid(target)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return (loss * valid).sum() / n


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss 1 - (2|P.T| + s) / (|P| + |T| + s) over the non-ignored pixels of the batch."""
    valid, t, _ = _valid(target)
    p = torch.sigmoid(logits) * valid
    inter = (p * t).sum()
    return 1 - (2 * inter + smooth) / (p.sum() + t.sum() + smooth)


def combined_loss(logits: torch.Tensor, target: torch.Tensor, focal_weight: float = 0.7, dice_weight: float = 0.3,
                  alpha: float | None = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """focal_weight * focal + dice_weight * dice (the seeds' default 0.7 / 0.3)."""
    return focal_weight * focal_loss(logits, target, alpha, gamma) + dice_weight * dice_loss(logits, target)


def pu_loss(logits: torch.Tensor, target: torch.Tensor, prior: float) -> torch.Tensor:
    """Non-negative positive-unlabelled risk (Kiryo et al. 2017) with the logistic loss.

    Target 1 = labelled particle pixel, 0 = *unlabelled* pixel (particle or not),
    IGNORE = excluded. ``prior`` is the share of unlabelled pixels that belong to
    particles. Risk = prior * E_P[l(f,+)] + max(0, E_U[l(f,-)] - prior * E_P[l(f,-)]);
    when the bracket goes negative (over-fitting the unlabelled set as negative) the
    step minimises its magnitude instead, as nnPU does.
    """
    pos = target >= 0.5
    unl = (target >= 0) & (target < 0.5)
    n_p, n_u = pos.sum().clamp_min(1), unl.sum().clamp_min(1)
    loss_pos = F.softplus(-logits)  # l(f, +1)
    loss_neg = F.softplus(logits)  # l(f, -1)
    r_p_pos = (loss_pos * pos).sum() / n_p
    r_p_neg = (loss_neg * pos).sum() / n_p
    r_u_neg = (loss_neg * unl).sum() / n_u
    if not bool(pos.any()):  # no labelled pixel in the batch: unlabelled pixels as plain negatives, down-weighted
        return (1 - prior) * r_u_neg
    neg_risk = r_u_neg - prior * r_p_neg
    if neg_risk.item() >= 0:
        return prior * r_p_pos + neg_risk
    return -neg_risk


class MaskedLoss(nn.Module):
    """A loss function with fixed keyword options, as an nn.Module."""

    def __init__(self, fn, **options):
        super().__init__()
        self.fn, self.options = fn, options

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
        return self.fn(logits, target, **self.options)

    def extra_repr(self) -> str:
        return f"{self.fn.__name__}, {self.options}"


def _check_prior(prior: float | None = None, **_) -> None:
    if prior is None or not 0 < prior < 1:
        raise InputError(f"the pu loss needs a class prior in (0, 1), got {prior}; give --particles-per-micrograph "
                         "(expected particles per micrograph) or --pu-prior")


def _describe_combined(options: dict[str, Any]) -> str:
    return f"combined (focal {options['focal_weight']:g} + dice {options['dice_weight']:g})"


@dataclass(frozen=True)
class Loss:
    """One loss: its pure function, the keyword options it takes (names of :func:`build_loss`'s
    arguments), a one-line help for the CLI, an optional check of those options and an
    optional one-line description of a configured loss (comparison tables; default: the name)."""

    name: str
    fn: Callable[..., torch.Tensor]
    options: tuple[str, ...]
    help: str
    check: Callable[..., None] | None = None
    describe: Callable[[dict[str, Any]], str] | None = None

    def label(self, options: dict[str, Any]) -> str:
        return self.describe(options) if self.describe is not None else self.name


#: The registry: every loss declared once. ``build_loss``, the ``--loss``/``--retrain-loss``
#: choices and help, and the values ``compare --vary loss=...`` accepts all come from it.
REGISTRY: dict[str, Loss] = by_name(
    Loss("bce", bce_loss, (), "binary cross-entropy"),
    Loss("focal", focal_loss, ("alpha", "gamma"), "focal loss: easy pixels down-weighted"),
    Loss("dice", dice_loss, (), "soft Dice"),
    Loss("combined", combined_loss, ("focal_weight", "dice_weight", "alpha", "gamma"),
         "focal x --focal-weight + Dice x --dice-weight (0.7 / 0.3)", describe=_describe_combined),
    Loss("pu", pu_loss, ("prior",), "non-negative positive-unlabelled risk (needs the class prior)",
         check=_check_prior),
)
LOSSES = tuple(REGISTRY)
AUTO = "auto"  # resolved per run (pipeline.resolve_loss): pu when the expected particle count is known, else combined
LOSS_CHOICES = (AUTO, *LOSSES)  # what --loss, --retrain-loss and compare --vary loss=... accept
LOSS_HELP = help_text(REGISTRY)
#: TrainConfig field of each :func:`build_loss` option.
CONFIG_FIELDS = {"focal_weight": "focal_weight", "dice_weight": "dice_weight", "alpha": "focal_alpha",
                 "gamma": "focal_gamma", "prior": "pu_prior"}


def get_loss(name: str) -> Loss:
    """The registered loss ``name``; InputError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return REGISTRY[name]


def build_loss(name: str, focal_weight: float = 0.7, dice_weight: float = 0.3, alpha: float | None = 0.25,
               gamma: float = 2.0, prior: float | None = None) -> MaskedLoss:
    """The loss ``name`` with the options it takes (the others are ignored; all are range-checked)."""
    if gamma < 0:
        raise InputError(f"focal gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0 <= alpha <= 1:
        raise InputError(f"focal alpha must be in [0, 1], got {alpha}")
    if focal_weight < 0 or dice_weight < 0 or focal_weight + dice_weight == 0:
        raise InputError(f"loss weights must be >= 0 and not both 0, got focal {focal_weight}, dice {dice_weight}")
    spec = get_loss(name)
    given = {"focal_weight": focal_weight, "dice_weight": dice_weight, "alpha": alpha, "gamma": gamma, "prior": prior}
    options = {k: given[k] for k in spec.options}
    if spec.check is not None:
        spec.check(**options)
    return MaskedLoss(spec.fn, **options)


def loss_from_config(cfg) -> MaskedLoss:
    """The loss a TrainConfig asks for (``auto`` must have been resolved before)."""
    return build_loss(cfg.loss, **{k: getattr(cfg, f) for k, f in CONFIG_FIELDS.items()})
