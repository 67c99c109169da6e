import math

import pytest
import torch

from cryopick.errors import InputError
from cryopick.losses import bce_loss, build_loss, combined_loss, dice_loss, focal_loss, pu_loss

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


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "combined", "pu"])
def test_ignored_pixels_get_exactly_zero_gradient(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    ignore = torch.rand(2, 1, 8, 8) > 0.6
    target[ignore] = -1
    build_loss(name, prior=0.2)(logits, target).backward()
    assert torch.all(logits.grad[ignore] == 0)
    assert torch.any(logits.grad[~ignore] != 0)


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "combined", "pu"])
def test_ignored_values_do_not_change_the_loss(name):
    torch.manual_seed(1)
    logits = torch.randn(1, 1, 6, 6)
    target = (torch.rand(1, 1, 6, 6) > 0.5).float()
    target[..., :2] = -1
    other = logits.clone()
    other[..., :2] = 100.0  # wildly different predictions where ignored
    f = build_loss(name, prior=0.2)
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


def sp(x):  # softplus
    return math.log1p(math.exp(x))


def test_pu_loss_golden():
    # positives: logit 0 (labelled); unlabelled: logits 2 and -1; prior 0.2
    r_p_pos, r_p_neg = sp(-0.0), sp(0.0)
    r_u_neg = (sp(2.0) + sp(-1.0)) / 2
    expected = 0.2 * r_p_pos + (r_u_neg - 0.2 * r_p_neg)
    assert pu_loss(LOGITS, TARGET, 0.2).item() == pytest.approx(expected, rel=1e-6)


def test_pu_loss_non_negative_correction():
    # unlabelled pixels all confidently negative, the labelled positive predicted negative too:
    # the negative risk estimate goes below zero and the loss becomes its magnitude
    logits = torch.tensor([[-8.0, -8.0, -8.0]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    r_u_neg, r_p_neg = sp(-8.0), sp(-8.0)
    neg = r_u_neg - 0.9 * r_p_neg
    assert neg > 0  # (sanity) with these numbers the bracket stays positive
    logits = torch.tensor([[6.0, -8.0, -8.0]])
    neg = sp(-8.0) - 0.9 * sp(6.0)
    assert neg < 0
    assert pu_loss(logits, target, 0.9).item() == pytest.approx(-neg, rel=1e-6)


def test_pu_needs_a_prior():
    with pytest.raises(InputError, match="particles-per-micrograph"):
        build_loss("pu")


def test_auto_loss_is_pn_when_the_labels_already_hold_the_expected_count():
    """auto -> pu only when the count says unlabelled particles exist (as Topaz falls back to PN);
    one fully labelled micrograph with its own count gave a PU prior near 0 and a collapsed model."""
    from types import SimpleNamespace

    import numpy as np

    from cryopick.config import DataConfig, TrainConfig
    from cryopick.data import Sample
    from cryopick.pipeline import resolve_loss

    mask = np.zeros((64, 64), np.float32)
    mask[10:14, 10:14] = 1
    samples = [Sample(f"m{i}", mask, mask, np.zeros((5, 2)), mask.shape) for i in range(2)]
    samples.append(Sample("unlabelled", mask, None, None, mask.shape))
    data = SimpleNamespace(train=samples, prep=SimpleNamespace(mask_radius=2.0))

    def resolved(per_mic, loss="auto"):
        return resolve_loss(TrainConfig(loss=loss), DataConfig(particles_per_micrograph=per_mic), data)

    sparse = resolved(20.0)
    assert sparse.loss == "pu" and 0 < sparse.pu_prior < 0.5
    assert resolved(5.0).loss == "combined" and resolved(5.0).pu_prior is None  # 5 labelled of 5 expected
    assert resolved(4.0).loss == "combined"
    assert resolved(None).loss == "combined"
    assert resolved(5.0, loss="pu").loss == "pu"  # an explicit --loss pu is kept
