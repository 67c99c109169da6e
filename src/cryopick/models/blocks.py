"""Building blocks shared by the U-Net family."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) x 2; keeps the spatial size."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) on a skip connection.

    alpha = sigmoid(psi(relu(W_g g + W_x x))); returns (x * alpha, alpha).
    W_g, W_x and psi are each a 1x1 conv followed by BatchNorm.
    """

    def __init__(self, gate_ch: int, skip_ch: int, inter_ch: int):
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(gate_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.W_x = nn.Sequential(nn.Conv2d(skip_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.psi = nn.Sequential(nn.Conv2d(inter_ch, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.psi(self.relu(self.W_g(g) + self.W_x(x)))  # (B, 1, H, W)
        return x * alpha, alpha


class DecoderBlock(nn.Module):
    """Transposed-conv upsampling, optional attention gate on the skip, concat, DoubleConv."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, attention: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, skip_ch, kernel_size=2, stride=2)
        self.gate = AttentionGate(skip_ch, skip_ch, skip_ch // 2) if attention else None
        self.conv = DoubleConv(2 * skip_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.up(x)  # (B, skip_ch, 2H, 2W)
        alpha = None
        if self.gate is not None:
            skip, alpha = self.gate(x, skip)
        return self.conv(torch.cat([skip, x], dim=1)), alpha
