"""Model registry: architecture names as used on the command line and in checkpoints."""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from .unet import AttentionUNet, UNet, UNetFamily

ARCHITECTURES = {"unet": UNet, "attention-unet": AttentionUNet}


def build_model(arch: str, base_features: int = 64, in_channels: int = 1, out_channels: int = 1) -> UNetFamily:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    return cls(in_channels=in_channels, out_channels=out_channels, base_features=base_features)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ARCHITECTURES", "AttentionUNet", "UNet", "UNetFamily", "build_model", "count_parameters"]
