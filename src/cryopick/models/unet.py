"""U-Net and Attention U-Net: one encoder, one decoder, the attention gate an option.

Encoder: 4 levels (b, 2b, 4b, 8b channels; b = base width, 64 in the seeds) with
DoubleConv + 2x2 max-pool, bottleneck 16b. Decoder: transposed-conv upsampling,
skip concatenation (attention-gated in AttentionUNet), DoubleConv; 1x1 conv head
giving logits. At b=64, in=1, out=1: UNet 31,042,369 and AttentionUNet 31,393,901
parameters.

Any input size works: inputs are reflect-padded to a multiple of 16 and the output
is cropped back, so the logits always have the input's (H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DecoderBlock, DoubleConv

DEPTH = 4  # pooling levels
MULTIPLE = 2**DEPTH


class UNetFamily(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_features: int = 64, attention: bool = False):
        super().__init__()
        if base_features < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError("channels and base_features must be positive")
        self.in_channels, self.out_channels, self.base_features = in_channels, out_channels, base_features
        self.attention = attention
        enc = [base_features * 2**i for i in range(DEPTH)]  # [b, 2b, 4b, 8b]
        bottleneck = base_features * 2**DEPTH  # 16b

        self.encoders = nn.ModuleList(DoubleConv(c_in, c_out) for c_in, c_out in zip([in_channels] + enc[:-1], enc))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(enc[-1], bottleneck)
        dec_in = [bottleneck] + enc[::-1][:-1]  # [16b, 8b, 4b, 2b]
        skips = enc[::-1]  # [8b, 4b, 2b, b]
        self.decoders = nn.ModuleList(DecoderBlock(i, s, s, attention) for i, s in zip(dec_in, skips))
        self.head = nn.Conv2d(enc[0], out_channels, 1)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        alphas = []
        for dec, skip in zip(self.decoders, reversed(skips)):
            x, alpha = dec(x, skip)
            if alpha is not None:  # crop the padding away at this level's scale
                scale = (h + ph) // alpha.shape[-2]
                alphas.append(alpha[..., : -(-h // scale), : -(-w // scale)])
        return self.head(x)[..., :h, :w], alphas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> logits (B, out, H, W)."""
        return self._forward(x)[0]

    def architecture(self) -> dict:
        return {
            "arch": "attention-unet" if self.attention else "unet",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "base_features": self.base_features,
        }


class UNet(UNetFamily):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_features: int = 64):
        super().__init__(in_channels, out_channels, base_features, attention=False)


class AttentionUNet(UNetFamily):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_features: int = 64):
        super().__init__(in_channels, out_channels, base_features, attention=True)

    @torch.no_grad()
    def get_attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attention coefficients of every level: {'att1': (B,1,H,W), 'att2': (B,1,H/2,W/2), ...}.

        att1 is the finest level (full resolution), att4 the coarsest.
        """
        _, alphas = self._forward(x)
        return {f"att{i + 1}": a for i, a in enumerate(reversed(alphas))}
