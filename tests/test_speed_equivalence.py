"""The optimised picking path gives the picks of the straightforward one (issue 16).

Optimised: BatchNorm folded into the convolutions, NHWC, tiles batched, the blend-weight sum taken
as an outer product of 1-D coverages, single-window maps without a blend. Straightforward: the
model as trained, NCHW, one window at a time, a full-size weight-sum map (written out below).
Coordinates must be equal, scores and maps within 1e-5.
"""

import numpy as np
import pytest
import torch

from cryopick.config import PickConfig
from cryopick.data import Preprocessing
from cryopick.inference import fuse_for_inference
from cryopick.models import build_model
from cryopick.picking import Picker
from cryopick.preprocess import preprocess, to_original


def seeded_unet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("unet", 4)
    for m in model.modules():  # running statistics far from (0, 1), so folding them is not a no-op
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def reference_probability(model, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """One window at a time through the unmodified model, explicit sums of 2-D blend weights."""
    h, w = image.shape
    ramp = np.ones(tile)
    if overlap:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        ramp[:overlap], ramp[-overlap:] = r, r[::-1]
    weight = np.outer(ramp, ramp)

    def starts(n):
        return [0] if n <= tile else sorted(set(range(0, n - tile, tile - overlap)) | {n - tile})

    acc, norm = np.zeros((h, w)), np.zeros((h, w))
    with torch.no_grad():
        for y in starts(h):
            for x in starts(w):
                window = torch.from_numpy(image[y : y + tile, x : x + tile].copy())[None, None]
                p = torch.sigmoid(model(window))[0, 0].numpy().astype(np.float64)
                acc[y : y + tile, x : x + tile] += p * weight
                norm[y : y + tile, x : x + tile] += weight
    return (acc / norm).astype(np.float32)


@pytest.mark.parametrize("shape, tile, overlap", [((136, 120), 48, 12), ((64, 64), 64, 0)])
def test_optimised_path_gives_the_straightforward_picks(shape, tile, overlap):
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape).astype(np.float32)
    prep = Preprocessing(downsample=1.0, normalize="robust", radius=6.0, mask_radius_scale=0.6)
    cfg = PickConfig(tile_size=tile, overlap=overlap, batch_size=3)
    model = seeded_unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    fast = Picker([fuse_for_inference(model)], prep, cfg)
    fast.channels_last = True
    picks = fast.pick_image(image, "m", keep_prob=True, all_candidates=True)

    plain = Picker([model], prep, cfg)
    prob = reference_probability(model, preprocess(image, 1.0, "robust"), tile, overlap)
    xy, scores = plain.peaks(prob)
    xy = to_original(xy, 1.0)

    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # the original is untouched
    np.testing.assert_allclose(picks.prob, prob, atol=1e-5)
    assert len(xy) > 5
    assert len(picks.xy) == len(xy)
    mine, ref = np.lexsort(picks.xy.T), np.lexsort(xy.T)  # near-equal scores may swap places in score order
    np.testing.assert_array_equal(picks.xy[mine], xy[ref])
    np.testing.assert_allclose(picks.scores[mine], scores[ref], atol=1e-5)


def test_fused_model_matches_on_an_attention_unet():
    torch.manual_seed(1)
    model = build_model("attention-unet", 4).eval()
    x = torch.randn(2, 1, 32, 32)
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        np.testing.assert_allclose(fused(x.contiguous(memory_format=torch.channels_last)).numpy(),
                                   model(x).numpy(), atol=1e-5)
