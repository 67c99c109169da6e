"""BatchNorm over the global batch of every rank (see :mod:`cryopick.distributed`).

:func:`sync_batchnorm` swaps a model's BatchNorm layers for ones whose training statistics
are taken over all ranks (``nn.SyncBatchNorm`` on CUDA, :class:`AllReduceBatchNorm2d` on
CPU / Gloo, which ``nn.SyncBatchNorm`` refuses); :func:`unsync_batchnorm` swaps them back.
Parameters and buffers are shared, not copied, so optimizers keep working.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the backward pass sums the gradients over ranks too."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are taken over the global batch of all ranks.

    ``nn.SyncBatchNorm`` refuses CPU tensors, so Gloo (CPU) runs use this instead: mean
    and (biased) variance by two all-reduced passes, the running statistics updated with
    the global count, exactly as ``F.batch_norm`` would on the concatenated batch. In eval
    mode, or without a process group, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        shape = (1, c, 1, 1)
        local = torch.cat([x.sum(dim=(0, 2, 3)), x.new_tensor([x.numel() / c])])
        total = _AllReduceSum.apply(local)
        n = total[c].detach()
        mean = total[:c] / n
        d = x - mean.view(shape)
        var = _AllReduceSum.apply((d * d).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp_min(1)), alpha=m)
        y = d * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _swap_batchnorm(module: nn.Module, match, make) -> nn.Module:
    """Replace every submodule for which ``match(m)`` holds by ``make(m)``, sharing parameters and buffers."""

    def convert(m: nn.Module) -> nn.Module:
        if not match(m):
            return m
        new = make(m)
        if m.affine:
            new.weight, new.bias = m.weight, m.bias  # the same Parameter objects: optimizers keep working
        if m.track_running_stats:
            new.running_mean, new.running_var, new.num_batches_tracked = m.running_mean, m.running_var, m.num_batches_tracked
        new.train(m.training)
        return new

    for name, child in list(module.named_children()):
        new = convert(child)
        if new is not child:
            setattr(module, name, new)
        else:
            _swap_batchnorm(child, match, make)
    return convert(module)


def _bn_args(m) -> dict:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats}


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> global-batch statistics: ``nn.SyncBatchNorm`` on CUDA, ``AllReduceBatchNorm2d`` on CPU."""
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _swap_batchnorm(module, lambda m: type(m) is nn.BatchNorm2d,
                           lambda m: AllReduceBatchNorm2d(**_bn_args(m)).to(m.weight.device if m.affine else "cpu"))


def unsync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`sync_batchnorm`: plain BatchNorm2d layers with the same parameters and statistics."""
    return _swap_batchnorm(module, lambda m: isinstance(m, (nn.SyncBatchNorm, AllReduceBatchNorm2d)),
                           lambda m: nn.BatchNorm2d(**_bn_args(m)))
