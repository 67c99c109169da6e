import math

import pytest
import torch

from cryopick.errors import InputError
from cryopick.losses import bce_loss, build_loss, combined_loss, dice_loss, focal_loss

LOGITS = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
TARGET = torch.tensor([[1.0, 0.0], [0.0, -1.0]])  # last pixel ignored


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_bce_golden():
    # pixels: (0 -> 1): ln 2; (2 -> 0): ln(1+e^2); (-1 -> 0): ln(1+e^-1); ignored excluded
    expected = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1)) / 3
    assert bce_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_golden():
    # FL = -alpha_t (1-p_t)^2 log p_t, alpha 0.25 for positives, 0.75 for negatives
    p = [sig(0.0), sig(2.0), sig(-1.0)]
    terms = [0.25 * (1 - p[0]) ** 2 * -math.log(p[0]),
             0.75 * p[1] ** 2 * -math.log(1 - p[1]),
             0.75 * p[2] ** 2 * -math.log(1 - p[2])]
    assert focal_loss(LOGITS, TARGET).item() == pytest.approx(sum(terms) / 3, rel=1e-6)


def test_focal_reduces_to_bce():
    assert focal_loss(LOGITS, TARGET, alpha=None, gamma=0.0).item() == pytest.approx(bce_loss(LOGITS, TARGET).item())


def test_dice_golden():
    p = [sig(0.0), sig(2.0), sig(-1.0)]
    inter = p[0] * 1
    expected = 1 - (2 * inter + 1) / (sum(p) + 1 + 1)
    assert dice_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_combined_is_weighted_sum():
    c = combined_loss(LOGITS, TARGET)
    assert c.item() == pytest.approx(0.7 * focal_loss(LOGITS, TARGET).item() + 0.3 * dice_loss(LOGITS, TARGET).item())


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "combined"])
def test_ignored_pixels_get_exactly_zero_gradient(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    ignore = torch.rand(2, 1, 8, 8) > 0.6
    target[ignore] = -1
    build_loss(name)(logits, target).backward()
    assert torch.all(logits.grad[ignore] == 0)
    assert torch.any(logits.grad[~ignore] != 0)


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "combined"])
def test_ignored_values_do_not_change_the_loss(name):
    torch.manual_seed(1)
    logits = torch.randn(1, 1, 6, 6)
    target = (torch.rand(1, 1, 6, 6) > 0.5).float()
    target[..., :2] = -1
    other = logits.clone()
    other[..., :2] = 100.0  # wildly different predictions where ignored
    f = build_loss(name)
    assert f(logits, target).item() == pytest.approx(f(other, target).item(), rel=1e-6)


def test_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 1, 4, 4, requires_grad=True)
    target = torch.full((1, 1, 4, 4), -1.0)
    loss = focal_loss(logits, target) + bce_loss(logits, target)
    assert loss.item() == 0.0


def test_build_loss_validates():
    with pytest.raises(InputError):
        build_loss("l2")
    with pytest.raises(InputError):
        build_loss("focal", gamma=-1)
    with pytest.raises(InputError):
        build_loss("combined", focal_weight=0, dice_weight=0)
