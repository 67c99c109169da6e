import numpy as np
import pytest

from cryopick.data import PatchDataset, Sample
from cryopick.errors import InputError
from cryopick.targets import particle_mask


def _samples(n=3, size=128, n_particles=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        xy = rng.uniform(10, 40, (n_particles, 2))  # particles only in one corner
        img = rng.normal(size=(size, size)).astype(np.float32)
        out.append(Sample(f"m{i}", img, particle_mask((size, size), xy, 4.0), xy, (size, size)))
    return out


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_balanced_sampler_share(share):
    ds = PatchDataset(_samples(), 32, n=64, seed=1, positive_share=share, batch_size=8)
    for epoch in range(3):
        ds.set_epoch(epoch)
        has = np.array([(ds.window(i)[1] >= 0.5).any() for i in range(len(ds))]).reshape(-1, 8)
        # every batch holds exactly round(share * 8) patches with a particle
        assert (has.sum(axis=1) == round(share * 8)).all()


def test_uniform_sampling_is_mostly_background_here():
    ds = PatchDataset(_samples(), 32, n=64, seed=1)
    has = np.mean([(ds.window(i)[1] >= 0.5).any() for i in range(len(ds))])
    assert has < 0.5  # particles sit in one corner: the balanced sampler is what fixes this


def test_plan_is_a_function_of_seed_and_epoch():
    a = PatchDataset(_samples(), 32, n=16, seed=3, positive_share=0.5)
    b = PatchDataset(_samples(), 32, n=16, seed=3, positive_share=0.5)
    a.set_epoch(4), b.set_epoch(4)
    assert a.plan == b.plan
    b.set_epoch(5)
    assert a.plan != b.plan


def test_patches_have_patch_size_even_for_small_micrographs():
    s = _samples(1, size=20)
    ds = PatchDataset(s, 32, n=4, seed=0)
    img, mask = ds[0]
    assert img.shape == (1, 32, 32) and mask.shape == (1, 32, 32)
    assert (mask[0, 20:, :] == -1).all()  # padding is ignored


def test_no_labelled_samples_is_an_error():
    s = _samples(1)
    s[0].mask = None
    with pytest.raises(InputError):
        PatchDataset(s, 32, n=4, seed=0)


def test_patches_per_epoch_default_covers_the_area_once_with_a_floor():
    """One small labelled micrograph still gets ``min_patches_per_epoch`` patches an epoch (the
    few-label regime was undertrained at 2 steps an epoch); a large area is covered once; an
    explicit --patches-per-epoch wins."""
    import torch

    from cryopick.config import TrainConfig
    from cryopick.train import resolve_train_config

    def n_for(side: int, **kw) -> int:
        image = np.zeros((side, side), np.float32)
        sample = Sample("m", image, particle_mask(image.shape, np.array([[side / 2, side / 2]]), 4.0),
                        np.array([[side / 2, side / 2]]), image.shape)
        cfg = resolve_train_config(TrainConfig(device="cpu", patch_size=128, **kw), torch.device("cpu"), [sample])
        return cfg.patches_per_epoch

    assert TrainConfig().min_patches_per_epoch == 128
    assert n_for(512) == 128  # 16 patches cover it; the floor lifts it
    assert n_for(512, min_patches_per_epoch=1) == 16  # the area alone (a multiple of the batch of 8)
    assert n_for(2048) == 256  # 2048^2 / 128^2: covered once, above the floor
    assert n_for(512, patches_per_epoch=24) == 24
