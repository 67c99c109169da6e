"""Tests of cryopick.augment: alignment, ignore labels, reproducibility, validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cryopick.augment import (
    Compose,
    ContrastGradient,
    CryoEMAugmentation,
    ElasticDeform,
    GaussianBlur,
    GaussianNoise,
    IceContamination,
    Normalize,
    RandomRot90Flip,
    RandomZoom,
    augmentation_examples,
    default_train_transform,
    save_augmentation_examples,
)
from cryopick.errors import InputError, OutputError

SIZE = 64
THRESHOLD = 0.0  # image > THRESHOLD is a particle ...
IGNORE_ABOVE = 1.5  # ... unless image > IGNORE_ABOVE, which is ignore (-1)


def label_of(image: np.ndarray) -> np.ndarray:
    """The mask as a function of the image, so alignment can be checked after moving."""
    return np.where(image > IGNORE_ABOVE, -1.0, (image > THRESHOLD).astype(np.float64))


@pytest.fixture(scope="module")
def patch() -> tuple[np.ndarray, np.ndarray]:
    """Smooth random field (unit std) and its thresholded mask with some -1 pixels."""
    rng = np.random.default_rng(1234)
    image = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 6.0, mode="wrap")
    image = (image / image.std()).astype(np.float32)
    mask = label_of(image).astype(np.float32)
    assert 0 < (mask == -1).sum() < mask.size // 4
    assert 0 < (mask == 1).sum() and 0 < (mask == 0).sum()
    return image, mask


def random_transforms(p: float) -> list:
    return [
        RandomRot90Flip(p=p),
        ElasticDeform(p=p),
        GaussianNoise(p=p),
        ContrastGradient(p=p),
        IceContamination(p=p),
        RandomZoom(p=p),
        GaussianBlur(p=p),
        CryoEMAugmentation(p=p),
        CryoEMAugmentation(p=p, domain=True),
    ]


INTENSITY = [GaussianNoise(p=1.0), GaussianBlur(p=1.0), ContrastGradient(p=1.0), IceContamination(p=1.0), Normalize()]
ALL_P1 = random_transforms(1.0) + [Normalize(), default_train_transform(True)]


def ids(transforms: list) -> list[str]:
    return [repr(t) for t in transforms]


# ---------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("seed", range(16))
def test_rot90flip_keeps_image_and_mask_aligned(patch, seed):
    image, mask = patch
    out_image, out_mask = RandomRot90Flip(p=1.0)(image, mask, np.random.default_rng(seed))
    np.testing.assert_array_equal(out_mask, label_of(out_image))
    assert (out_mask == -1).sum() == (mask == -1).sum()
    assert not np.array_equal(out_image, image)  # p=1 never picks the identity
    assert sorted(out_image.ravel()) == sorted(image.ravel())  # a permutation of pixels


def test_rot90flip_uses_all_seven_symmetries(patch):
    image, mask = patch
    seen = {
        RandomRot90Flip(p=1.0)(image, mask, np.random.default_rng(s))[0].tobytes()
        for s in range(200)
    }
    assert len(seen) == 7


def test_rot90flip_non_square_keeps_shape():
    image = np.arange(6 * 10, dtype=np.float32).reshape(6, 10)
    mask = (image > 20).astype(np.float32)
    for seed in range(20):
        out_image, out_mask = RandomRot90Flip(p=1.0)(image, mask, np.random.default_rng(seed))
        assert out_image.shape == out_mask.shape == (6, 10)
        np.testing.assert_array_equal(out_mask, (out_image > 20).astype(np.float32))


@pytest.mark.parametrize("make", [ElasticDeform, RandomZoom])
@pytest.mark.parametrize("seed", range(8))
def test_resampling_keeps_image_and_mask_aligned(patch, seed, make):
    image, mask = patch
    out_image, out_mask = make(p=1.0)(image, mask, np.random.default_rng(seed))
    assert (out_mask == label_of(out_image)).mean() >= 0.97
    assert set(np.unique(out_mask)) <= set(np.unique(mask))
    assert (out_mask == -1).any()  # ignore labels are moved, not lost or blurred
    assert not np.array_equal(out_image, image)


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_zoom_scales_a_centred_disk_by_the_factor(scale):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disk = (((yy - (SIZE - 1) / 2) ** 2 + (xx - (SIZE - 1) / 2) ** 2) <= 10.0**2).astype(np.float32)
    out_image, out_mask = RandomZoom(p=1.0, scale_range=(scale, scale))(disk, disk, np.random.default_rng(0))
    assert (out_mask == 1).sum() == pytest.approx(disk.sum() * scale**2, rel=0.08)
    cy, cx = ndimage.center_of_mass(out_mask)
    assert abs(cy - (SIZE - 1) / 2) < 0.5 and abs(cx - (SIZE - 1) / 2) < 0.5


def test_blur_is_a_gaussian_low_pass_within_its_sigma_range(patch):
    image, mask = patch
    noise = np.random.default_rng(3).standard_normal(image.shape).astype(np.float32)
    out, _ = GaussianBlur(p=1.0, sigma_range=(1.5, 1.5))(noise, mask, np.random.default_rng(0))
    np.testing.assert_allclose(out, ndimage.gaussian_filter(noise, 1.5, mode="reflect"), atol=1e-6)
    assert out.std() < 0.4 * noise.std()


@pytest.mark.parametrize("seed", range(4))
def test_elastic_samples_image_and_mask_at_the_same_small_displacement(seed):
    """With coordinate ramps as inputs the outputs show where each pixel was sampled:
    the mask (nearest) must be the rounded image (linear) coordinate, within alpha px."""
    alpha = 2.5
    rows, cols = np.indices((SIZE, SIZE), dtype=np.float32)
    inner = (slice(8, -8), slice(8, -8))  # away from the reflected border
    for ramp in (rows, cols):
        out_image, out_mask = ElasticDeform(p=1.0, alpha=alpha)(
            ramp, ramp, np.random.default_rng(seed)
        )
        shift = out_image[inner] - ramp[inner]
        assert np.abs(shift).max() <= alpha + 1e-4
        assert np.abs(shift).max() > 0.2 * alpha
        assert np.abs(out_mask[inner] - out_image[inner]).max() <= 0.5 + 1e-4
        np.testing.assert_array_equal(out_mask, np.round(out_mask))  # values of the input


def test_elastic_keeps_soft_mask_values_and_ignore():
    rng = np.random.default_rng(5)
    mask = rng.choice(np.array([-1.0, 0.0, 0.25, 0.5, 1.0], dtype=np.float32), size=(SIZE, SIZE))
    image = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    _, out_mask = ElasticDeform(p=1.0)(image, mask, np.random.default_rng(0))
    assert set(np.unique(out_mask)) <= set(np.unique(mask))
    assert (out_mask == -1).any()


# ----------------------------------------------------------------- masks and intensity


@pytest.mark.parametrize("transform", INTENSITY, ids=ids(INTENSITY))
def test_intensity_transforms_never_touch_the_mask(patch, transform):
    image, mask = patch
    for seed in range(5):
        out_image, out_mask = transform(image, mask, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_mask, mask)
        assert not np.array_equal(out_image, image)


@pytest.mark.parametrize("transform", ALL_P1, ids=ids(ALL_P1))
def test_ignore_pixels_survive(patch, transform):
    image, mask = patch
    for seed in range(5):
        _, out_mask = transform(image, mask, np.random.default_rng(seed))
        assert (out_mask == -1).any()
        assert set(np.unique(out_mask)) <= {-1.0, 0.0, 1.0}
        if not isinstance(transform, (ElasticDeform, RandomZoom, Compose)):
            assert (out_mask == -1).sum() == (mask == -1).sum()


def test_bundle_without_elastic_keeps_ignore_count(patch):
    image, mask = patch
    for seed in range(10):
        bundle = CryoEMAugmentation(1.0)
        bundle.transforms = [t for t in bundle.transforms if not isinstance(t, ElasticDeform)]
        _, out_mask = bundle(image, mask, np.random.default_rng(seed))
        assert (out_mask == -1).sum() == (mask == -1).sum()


def test_ice_contamination_darkens_the_image(patch):
    image, mask = patch
    out_image, _ = IceContamination(p=1.0)(image, mask, np.random.default_rng(3))
    assert out_image.mean() < image.mean() - 0.05
    assert (out_image <= image + 1e-6).all()  # only ever darkens


def test_contrast_gradient_adds_a_ramp():
    flat = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask = np.zeros_like(flat)
    out, _ = ContrastGradient(p=1.0, brightness_range=(0.0, 0.0), gradient_range=(1.0, 1.0))(
        flat, mask, np.random.default_rng(0)
    )
    # linear in both directions, spanning -1..+1 at the far corners (std unit is 1 here)
    np.testing.assert_allclose(np.diff(out, 2, axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.diff(out, 2, axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose([out.min(), out.max()], [-1.0, 1.0], atol=1e-5)


def test_normalize_gives_zero_mean_unit_std(patch):
    image, mask = patch
    out, out_mask = Normalize()(image * 37.0 + 500.0, mask, np.random.default_rng(0))
    assert abs(float(out.mean())) < 1e-5
    assert abs(float(out.std()) - 1.0) < 1e-5
    np.testing.assert_array_equal(out_mask, mask)


@pytest.mark.parametrize("value", [0.0, 3.5, -1e6])
def test_normalize_constant_patch_gives_zeros(value):
    flat = np.full((SIZE, SIZE), value, dtype=np.float32)
    out, _ = Normalize()(flat, np.zeros_like(flat), np.random.default_rng(0))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("transform", ALL_P1, ids=ids(ALL_P1))
def test_constant_patch_gives_finite_output(transform):
    flat = np.full((SIZE, SIZE), 2.0, dtype=np.float32)
    out, _ = transform(flat, np.zeros_like(flat), np.random.default_rng(0))
    assert np.isfinite(out).all()


# ------------------------------------------------------ outputs, probability, seeding


@pytest.mark.parametrize("transform", ALL_P1, ids=ids(ALL_P1))
def test_outputs_are_float32_contiguous_and_inputs_untouched(patch, transform):
    image, mask = patch
    # float64, non-contiguous inputs
    image64 = np.asfortranarray(image.astype(np.float64))
    mask64 = np.asfortranarray(mask.astype(np.float64))
    before = (image64.copy(), mask64.copy())
    out_image, out_mask = transform(image64, mask64, np.random.default_rng(0))
    for out in (out_image, out_mask):
        assert out.dtype == np.float32
        assert out.shape == (SIZE, SIZE)
        assert out.flags.c_contiguous
    np.testing.assert_array_equal(image64, before[0])
    np.testing.assert_array_equal(mask64, before[1])


@pytest.mark.parametrize("transform", random_transforms(0.0), ids=ids(random_transforms(0.0)))
def test_p0_is_identity(patch, transform):
    image, mask = patch
    for seed in range(10):
        out_image, out_mask = transform(image, mask, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)


@pytest.mark.parametrize("transform", random_transforms(1.0), ids=ids(random_transforms(1.0)))
def test_p1_always_changes_the_image(patch, transform):
    image, mask = patch
    for seed in range(20):
        out_image, _ = transform(image, mask, np.random.default_rng(seed))
        assert not np.array_equal(out_image, image)


def test_probability_is_respected(patch):
    image, mask = patch
    transform = GaussianNoise(p=0.3)
    rng = np.random.default_rng(0)
    changed = sum(not np.array_equal(transform(image, mask, rng)[0], image) for _ in range(400))
    assert 0.22 < changed / 400 < 0.38


@pytest.mark.parametrize("transform", ALL_P1, ids=ids(ALL_P1))
def test_same_seed_same_output(patch, transform):
    image, mask = patch
    a = transform(image, mask, np.random.default_rng(42))
    b = transform(image, mask, np.random.default_rng(42))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("transform", random_transforms(1.0), ids=ids(random_transforms(1.0)))
def test_different_seeds_different_output(patch, transform):
    image, mask = patch
    outputs = {transform(image, mask, np.random.default_rng(s))[0].tobytes() for s in range(4)}
    assert len(outputs) > 1


def test_bundle_different_seeds_differ(patch):
    image, mask = patch
    a, _ = CryoEMAugmentation(1.0)(image, mask, np.random.default_rng(0))
    b, _ = CryoEMAugmentation(1.0)(image, mask, np.random.default_rng(1))
    assert not np.array_equal(a, b)


def test_default_train_transform(patch):
    image, mask = patch
    plain = default_train_transform(False)
    assert [type(t) for t in plain.transforms] == [Normalize]
    augmented = default_train_transform(True)
    assert [type(t) for t in augmented.transforms] == [CryoEMAugmentation, Normalize]
    assert augmented.transforms[0].p == 0.5
    out, _ = augmented(image, mask, np.random.default_rng(0))
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1.0) < 1e-5


def test_bundle_probabilities():
    probs = {type(t): t.p for t in CryoEMAugmentation(0.5).transforms}
    assert probs == {
        RandomRot90Flip: 0.5,
        ElasticDeform: 0.25,
        GaussianNoise: 0.5,
        IceContamination: 0.2,
        ContrastGradient: 0.5,
    }
    domain = {type(t): t.p for t in CryoEMAugmentation(0.5, domain=True).transforms}
    assert domain == {**probs, RandomZoom: 0.5, GaussianBlur: 0.25}


# --------------------------------------------------------------------------- examples


def test_augmentation_examples_are_reproducible(patch):
    image, mask = patch
    a = augmentation_examples(image, mask, n=4, seed=3)
    b = augmentation_examples(image, mask, n=4, seed=3)
    assert len(a) == 4
    for (ia, ma), (ib, mb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)
        assert ia.shape == ma.shape == image.shape


def test_save_augmentation_examples_writes_atomically(patch, tmp_path):
    image, mask = patch
    target = tmp_path / "aug.png"
    assert save_augmentation_examples(image, mask, target, n=2, seed=0) == target
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["aug.png"]  # no temporary left


def test_save_augmentation_examples_unwritable(patch, tmp_path):
    image, mask = patch
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        save_augmentation_examples(image, mask, blocker / "aug.png", n=1)


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomRot90Flip(p=-0.1),
        lambda: RandomRot90Flip(p=1.5),
        lambda: RandomRot90Flip(p=float("nan")),
        lambda: RandomRot90Flip(p="0.5"),
        lambda: ElasticDeform(alpha=0.0),
        lambda: ElasticDeform(sigma=-1.0),
        lambda: ElasticDeform(alpha=float("inf")),
        lambda: GaussianNoise(std_range=(0.3, 0.1)),
        lambda: GaussianNoise(std_range=(-0.1, 0.2)),
        lambda: GaussianNoise(std_range=(0.0, 0.0)),
        lambda: GaussianNoise(std_range=0.2),
        lambda: ContrastGradient(gain_range=(0.0, 1.2)),
        lambda: ContrastGradient(brightness_range=(0.2, -0.2)),
        lambda: ContrastGradient(gradient_range=(-0.5, 0.5)),
        lambda: IceContamination(n_blobs=(0, 2)),
        lambda: IceContamination(n_blobs=(2, 1)),
        lambda: IceContamination(n_blobs=(1.5, 2)),
        lambda: IceContamination(radius_range=(0.0, 0.2)),
        lambda: IceContamination(strength_range=(3.0, 1.0)),
        lambda: IceContamination(edge_width=0.0),
        lambda: RandomZoom(scale_range=(0.0, 1.2)),
        lambda: RandomZoom(scale_range=(1.2, 0.8)),
        lambda: GaussianBlur(sigma_range=(0.0, 1.0)),
        lambda: GaussianBlur(sigma_range=1.0),
        lambda: Normalize(eps=0.0),
        lambda: Compose([Normalize(), "not a transform"]),
        lambda: Compose(5),
        lambda: CryoEMAugmentation(p=2.0),
    ],
)
def test_invalid_options_raise_input_error(make):
    with pytest.raises(InputError):
        make()


def test_invalid_call_arguments(patch):
    image, mask = patch
    rng = np.random.default_rng(0)
    with pytest.raises(InputError):
        Normalize()(image, mask[:-1], rng)
    with pytest.raises(InputError):
        RandomRot90Flip()(image[None], mask[None], rng)
    with pytest.raises(InputError):
        augmentation_examples(image, mask, n=0)
    with pytest.raises(TypeError):
        GaussianNoise()(image, mask, np.random.RandomState(0))


def test_transforms_pickle_for_dataloader_workers(patch):
    import pickle

    image, mask = patch
    transform = default_train_transform(True)
    clone = pickle.loads(pickle.dumps(transform))
    a = transform(image, mask, np.random.default_rng(9))
    b = clone(image, mask, np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_domain_randomisation_reaches_the_training_transform():
    from cryopick.config import TrainConfig

    def kinds(t):
        return {type(s) for s in t.transforms[0].transforms}

    assert RandomZoom not in kinds(default_train_transform(TrainConfig().augment))
    assert {RandomZoom, GaussianBlur} <= kinds(default_train_transform(True, TrainConfig(augment_domain=True).augment_domain))
