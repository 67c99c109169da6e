"""The moving average of the weights (``TrainConfig.ema_epochs``): golden updates.

Its path through ``fit`` and ``--resume``: tests/test_resume.py."""

from __future__ import annotations

import pytest
import torch

from cryopick.checkpoint import load_checkpoint
from cryopick.optim import WeightAverage, make_weight_average


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_first_updates_follow_the_warm_up_then_the_horizon():
    net = _net()
    avg = WeightAverage(net, horizon_steps=4)  # decay 0.75
    w0 = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    avg.update(net)  # warm-up decay (1 + 1) / (10 + 1) = 2/11 < 0.75
    assert torch.allclose(avg.module[0].weight, w0 + 9 / 11)
    assert torch.allclose(avg.module[1].running_mean, torch.full((2,), 2.0 * 9 / 11))
    assert int(avg.module[1].num_batches_tracked) == 7  # integer buffers are copied, not averaged
    for _ in range(30):
        avg.update(net)
    assert avg.steps == 31
    # the warm-up (1 + n) / (10 + n) stays below 0.75 until n = 26, then the horizon's 0.75
    expected = w0 + 9 / 11
    for n in range(2, 32):
        d = min(0.75, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * (w0 + 1.0)
    assert torch.allclose(avg.module[0].weight, expected, atol=1e-6)
    assert not avg.module[0].weight.requires_grad


def test_averaging_is_off_without_epochs_and_spans_epochs_times_steps():
    net = _net()
    assert make_weight_average(net, None, 16) is None
    assert make_weight_average(net, 0, 16) is None
    assert make_weight_average(net, 2, 16).decay == pytest.approx(1 - 1 / 32)
    assert make_weight_average(net, 0.01, 16).decay == 0.0  # never shorter than one step
    with pytest.raises(ValueError):
        WeightAverage(net, 0.5)
