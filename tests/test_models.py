import pytest
import torch

from cryopick.errors import InputError
from cryopick.models import AttentionUNet, UNet, build_model, count_parameters


def test_exact_parameter_counts_at_base_64():
    # the seeds' figures: U-Net 31,042,369 and Attention U-Net 31,393,901 parameters
    assert count_parameters(UNet(1, 1, 64)) == 31_042_369
    assert count_parameters(AttentionUNet(1, 1, 64)) == 31_393_901


@pytest.mark.parametrize("cls", [UNet, AttentionUNet])
@pytest.mark.parametrize("shape", [(64, 64), (70, 45), (17, 100), (128, 96)])
def test_any_input_size_gives_same_size_logits(cls, shape):
    torch.manual_seed(0)
    m = cls(1, 1, 4).eval()
    x = torch.randn(2, 1, *shape)
    assert m(x).shape == (2, 1, *shape)


def test_attention_maps_one_per_level_with_right_shapes():
    torch.manual_seed(0)
    m = AttentionUNet(1, 1, 4).eval()
    maps = m.get_attention_maps(torch.randn(1, 1, 70, 45))
    assert list(maps) == ["att1", "att2", "att3", "att4"]
    assert [tuple(v.shape[-2:]) for v in maps.values()] == [(70, 45), (35, 23), (18, 12), (9, 6)]
    for v in maps.values():
        assert v.min() >= 0 and v.max() <= 1


def test_attention_gate_is_the_only_difference():
    u, a = UNet(1, 1, 8), AttentionUNet(1, 1, 8)
    gates = sum(p.numel() for n, p in a.named_parameters() if ".gate." in n)
    assert count_parameters(a) - count_parameters(u) == gates > 0


def test_padding_does_not_leak_between_images():
    # the same image gives the same output whether alone or in a batch (eval mode)
    torch.manual_seed(0)
    m = UNet(1, 1, 4).eval()
    x = torch.randn(3, 1, 50, 50)
    with torch.no_grad():
        assert torch.allclose(m(x)[1:2], m(x[1:2]), atol=1e-5)


def test_build_model_rejects_unknown():
    with pytest.raises(InputError, match="unknown architecture"):
        build_model("resnet")
