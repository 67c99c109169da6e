"""Model registry: architecture names as used on the command line and in checkpoints.

:data:`ARCHITECTURES` declares each architecture once (its class and a one-line help);
``build_model``, checkpoint loading, the ``--arch`` choices and help, and the values
``compare --vary arch=...`` accepts derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import InputError
from ..registry import by_name, help_text
from .unet import AttentionUNet, UNet, UNetFamily


@dataclass(frozen=True)
class Architecture:
    name: str
    cls: type[UNetFamily]
    help: str


ARCHITECTURES: dict[str, Architecture] = by_name(
    Architecture("unet", UNet, "U-Net"),
    Architecture("attention-unet", AttentionUNet, "U-Net with additive attention gates on the skips"),
)
ARCH_HELP = help_text(ARCHITECTURES)


def build_model(arch: str, base_features: int = 64, in_channels: int = 1, out_channels: int = 1) -> UNetFamily:
    try:
        cls = ARCHITECTURES[arch].cls
    except KeyError:
        raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    return cls(in_channels=in_channels, out_channels=out_channels, base_features=base_features)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ARCHITECTURES", "ARCH_HELP", "Architecture", "AttentionUNet", "UNet", "UNetFamily", "build_model",
           "count_parameters"]
