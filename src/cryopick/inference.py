"""Tiled inference: a probability map for a micrograph of any size in bounded memory.

The (preprocessed) image is cut into ``tile`` x ``tile`` windows that overlap by
``overlap`` px; each window's sigmoid output is blended with a smooth weight that
falls towards the window's edges, so seams disappear and a particle on a tile border
gets the same probability as anywhere else. Peak memory is O(batch * tile^2) for the
network plus two float32 maps of the image's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def _blend_window(tile: int, overlap: int) -> np.ndarray:
    """Weights 1 in the middle, a cosine ramp over ``overlap`` px towards each edge (never 0)."""
    w = np.ones(tile, np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return np.outer(w, w)


def resolve_amp(amp: bool | None, device: torch.device | str) -> bool:
    """Mixed precision on or off: ``None`` means on for CUDA, off elsewhere. It only ever acts on CUDA."""
    return torch.device(device).type == "cuda" if amp is None else bool(amp)


def amp_dtype() -> torch.dtype:
    """bf16 where the GPU supports it (Ampere and later), else fp16 (which needs a GradScaler to train)."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: torch.device, amp: bool | None):
    """Autocast to bf16 / fp16 on CUDA when ``amp``; a no-op on CPU (where runs stay float32 and deterministic)."""
    device = torch.device(device)
    if resolve_amp(amp, device) and device.type == "cuda":
        return torch.autocast("cuda", dtype=amp_dtype())
    return contextlib.nullcontext()


@torch.no_grad()
def predict_probability(models: nn.Module | list[nn.Module], image: np.ndarray, tile: int = 512, overlap: int = 64,
                         batch_size: int = 4, device: torch.device | str = "cpu", amp: bool = False,
                         channels_last: bool = False, tta: bool = False,
                         progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Probability map (h, w) float32 for a preprocessed image; several models are averaged
    (an ensemble: the mean of their probabilities).

    ``batch_size`` tiles go through the network at once; on CUDA each batch is copied
    from pinned memory without blocking. ``amp`` (CUDA only) runs the network in bf16/fp16,
    ``channels_last`` feeds NHWC batches (use it with models converted to channels_last).
    ``tta`` averages the 8 flips/rotations of every tile (test-time augmentation, 8x the work).
    ``progress``, when given, is called as ``progress(tiles_done, tiles_total)`` after every batch."""
    models = models if isinstance(models, (list, tuple)) else [models]
    device = torch.device(device)
    h, w = image.shape
    tile = int(min(tile, max(h, w)))
    tile += (-tile) % 16
    overlap = min(overlap, tile // 4)
    pad_h, pad_w = max(0, tile - h), max(0, tile - w)
    img = np.pad(image, ((0, pad_h), (0, pad_w)), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "edge")
    H, W = img.shape
    step = tile - overlap
    windows = [(y, x) for y in _starts(H, tile, step) for x in _starts(W, tile, step)]
    weight = _blend_window(tile, overlap if len(windows) > 1 else 0)
    acc = np.zeros((H, W), np.float32)
    norm = np.zeros((H, W), np.float32)
    for m in models:
        m.eval()
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        batch = torch.from_numpy(np.stack([img[y : y + tile, x : x + tile] for y, x in chunk]))[:, None]
        if device.type == "cuda":
            batch = batch.pin_memory().to(device, non_blocking=True)
        else:
            batch = batch.to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            prob = sum(_forward(m, batch, tta) for m in models) / len(models)
        prob = prob[:, 0].cpu().numpy()
        for (y, x), p in zip(chunk, prob):
            acc[y : y + tile, x : x + tile] += p * weight
            norm[y : y + tile, x : x + tile] += weight
        if progress is not None:
            progress(min(i + batch_size, len(windows)), len(windows))
    return (acc / norm)[:h, :w]


def _forward(model: nn.Module, batch: torch.Tensor, tta: bool) -> torch.Tensor:
    """Sigmoid probabilities (B, 1, H, W); with ``tta`` the mean over the dihedral group D4."""
    if not tta:
        return torch.sigmoid(model(batch).float())
    total = torch.zeros(batch.shape, dtype=torch.float32, device=batch.device)
    for flip in (False, True):
        x = batch.flip(-1) if flip else batch
        for k in range(4):
            y = torch.sigmoid(model(torch.rot90(x, k, (-2, -1))).float())
            y = torch.rot90(y, -k, (-2, -1))
            total += y.flip(-1) if flip else y
    return total / 8
