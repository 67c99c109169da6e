"""Datasets: micrographs + labels -> preprocessed images and target masks -> training patches.

``load_samples`` reads and pairs micrographs and labels (by file stem), preprocesses
them (the same function as at pick time) and paints the target masks.
``PatchDataset`` serves random patches following a per-epoch ``plan`` that is a pure
function of (seed, epoch): uniform, or balanced so that a set share of patches holds a
particle. Augmentation randomness is drawn from (seed, epoch, index), so a run is
repeatable and a resumed run replays exactly the epochs it missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import InputError
from .io import find_micrographs, read_labels, read_micrograph, validate_labels
from .io.zarr_store import is_zarr_dataset, read_zarr_dataset
from .masks import is_mask_dir, read_mask_labels
from .preprocess import auto_downsample, preprocess, to_downsampled
from .targets import IGNORE, particle_mask


@dataclass
class Sample:
    name: str
    image: np.ndarray  # (h, w) float32, preprocessed (downsampled, normalised)
    mask: np.ndarray | None  # (h, w) float32 target (1/0/-1) or None when unlabelled
    coords: np.ndarray | None  # (N, 2) labelled centres in downsampled px, None when unlabelled
    original_shape: tuple[int, int]
    source: str = ""


@dataclass
class Preprocessing:
    """Everything needed to turn a micrograph into model input; stored in checkpoints."""

    downsample: float
    normalize: str
    radius: float  # particle radius, original px
    mask_radius_scale: float = 1.0
    split_touching: float = 0.0  # training targets: background line between overlapping disks (x the target radius)

    @property
    def downsampled_radius(self) -> float:
        """The particle radius in downsampled px (the model's input, probability maps, peak matching)."""
        return self.radius / self.downsample

    @property
    def mask_radius(self) -> float:
        """The target disk radius in downsampled px (``mask_radius_scale`` x the particle radius)."""
        return self.radius * self.mask_radius_scale / self.downsample


@dataclass
class LoadedData:
    samples: list[Sample]
    prep: Preprocessing
    warnings: list[str] = field(default_factory=list)
    pixel_size: float | None = None  # Å/px shared by the micrographs (from MRC headers), None when unknown
    pixel_size_source: str = ""  # the micrograph it was read from

    @property
    def labelled(self) -> list[Sample]:
        return [s for s in self.samples if s.mask is not None]


def radius_from_diameters(labels: dict | None) -> float | None:
    """Half the median particle diameter the labels (``{name: Particles}``) give, None when none does."""
    diameters = [p.diameter for p in (labels or {}).values() if getattr(p, "diameter", None)]
    return float(np.median(diameters)) / 2 if diameters else None


def resolve_radius(radius: float | None, labels: dict | None, source: str) -> float:
    if radius is not None:
        if radius <= 0:
            raise InputError(f"--radius must be positive, got {radius}")
        return float(radius)
    from_labels = radius_from_diameters(labels)
    if from_labels is not None:
        return from_labels
    raise InputError(f"{source}: the labels give no particle diameter; pass --radius (particle radius in micrograph pixels)")


PIXEL_SIZE_RTOL = 0.01  # pixel sizes closer than 1 % count as the same


def check_pixel_sizes(sizes: list[tuple[str, float | None]], allow_mixed: bool) -> tuple[float | None, str, list[str]]:
    """One pixel size for ``(source, Å/px or None)`` pairs: ``(size, source, warnings)``.

    Labels and ``--radius`` are in pixels, so micrographs of different pixel sizes would
    mix particle scales in one model: an InputError, or only a warning with
    ``allow_mixed`` (an explicit ``--downsample``: the user fixed the scale). Unknown
    sizes (MRC voxel size 0, TIFF, PNG) are not compared.
    """
    known = [(src, float(ps)) for src, ps in sizes if ps]
    if not known:
        return None, "", []
    src0, ps0 = known[0]
    for src, ps in known[1:]:
        if abs(ps - ps0) > PIXEL_SIZE_RTOL * ps0:
            msg = (f"{src}: pixel size {ps:g} Å differs from {ps0:g} Å of {src0}; labels and --radius are in pixels, "
                   "so mixed pixel sizes mix particle scales")
            if not allow_mixed:
                raise InputError(msg + "; rescale the micrographs and their labels to one pixel size, train on one "
                                       "pixel size at a time, or pass --downsample explicitly to use them as they are")
            return ps0, src0, [msg + " (going on because --downsample was given)"]
    return ps0, src0, []


def check_particle_fits(source: str, shape: tuple[int, int], prep: Preprocessing) -> None:
    """The particle (diameter, after downsampling) must fit inside the downsampled micrograph."""
    h, w = (int(side / prep.downsample) for side in shape)
    diameter = 2 * prep.downsampled_radius
    if min(h, w) < 1 or diameter > min(h, w):
        raise InputError(
            f"{source}: a particle of radius {prep.radius:g} px is {diameter:.1f} px across after downsampling "
            f"by {prep.downsample:g}, larger than the micrograph ({w}x{h} px after downsampling); check --radius "
            "(in micrograph pixels) and --downsample"
        )


def load_samples(images: list[str], labels: str | None, *, radius: float | None, downsample: float | None,
                 normalize: str = "robust", mask_radius_scale: float = 0.6, split_touching: float = 0.0,
                 label_format: str | None = None,
                 prep: Preprocessing | None = None, require_labels: bool = True,
                 allow_mixed_pixel_size: bool | None = None) -> LoadedData:
    """Read micrographs (+ labels), preprocess, and paint masks.

    ``prep`` fixes the preprocessing (e.g. validation data must match training data);
    otherwise it is resolved from ``radius``/``downsample``/``normalize``.
    Micrographs without labels are kept with ``mask=None`` (self-training uses them).
    Micrographs of different pixel sizes are an error unless ``allow_mixed_pixel_size``
    (default: when ``downsample`` is given explicitly); see :func:`check_pixel_sizes`.
    """
    if len(images) == 1 and is_zarr_dataset(images[0]):
        return _load_zarr(Path(images[0]), prep, normalize)
    paths = find_micrographs(images)
    label_set, mask_dir = None, None
    if labels is not None:
        lp = Path(labels)
        if is_mask_dir(lp):
            mask_dir = lp
        else:
            label_set = read_labels(lp, fmt=label_format)
            if require_labels and not any(len(p) for p in label_set.values()):
                raise InputError(f"{lp}: holds no particle coordinates (0 labelled particles); label at least one "
                                 "particle, or check the file is the one you meant")
    elif require_labels:
        raise InputError("no labels given: pass --labels (a label file or directory)")

    if downsample is not None and downsample <= 0:
        raise InputError(f"--downsample must be positive, got {downsample:g}; leave it out for automatic downsampling")
    if prep is None:
        if mask_dir is not None and radius is None:
            raise InputError(f"{labels}: mask images give no particle size; pass --radius (particle radius in "
                             "micrograph pixels), which sets the downsampling and the picking distance")
        r = resolve_radius(radius, label_set, str(labels))
        factor = downsample if downsample else auto_downsample(2 * r)
        prep = Preprocessing(float(factor), normalize, r, mask_radius_scale, split_touching)

    samples, warnings = [], []
    mics = [read_micrograph(p) for p in paths]
    if allow_mixed_pixel_size is None:
        allow_mixed_pixel_size = downsample is not None
    pixel_size, pixel_source, pixel_warnings = check_pixel_sizes([(str(m.path), m.pixel_size) for m in mics],
                                                                 allow_mixed_pixel_size)
    warnings += pixel_warnings
    shapes = {m.name: m.image.shape for m in mics}
    if mask_dir is not None:  # disk masks -> particle centres (touching disks split), then painted as usual
        label_set = read_mask_labels(mask_dir, shapes, prep.radius)
    if label_set is not None:
        warnings += validate_labels(label_set, shapes, str(labels))
    for mic in mics:
        check_particle_fits(str(mic.path), mic.image.shape, prep)
        img = preprocess(mic.image, prep.downsample, prep.normalize)
        mask = coords = None
        if label_set is not None and mic.name in label_set:
            coords = to_downsampled(label_set[mic.name].xy, prep.downsample)
            mask = particle_mask(img.shape, coords, prep.mask_radius, split=prep.split_touching)
        samples.append(Sample(mic.name, img, mask, coords, mic.image.shape, str(mic.path)))
    if require_labels and not any(s.mask is not None for s in samples):
        raise InputError(f"{labels}: no label entry matches any micrograph stem (micrographs: "
                         f"{', '.join(s.name for s in samples[:3])}...); labels are paired with micrographs by file stem")
    if require_labels and label_set is not None and not any(s.coords is not None and len(s.coords) for s in samples):
        raise InputError(f"{labels}: the labelled micrographs among the inputs have 0 particles; label at least one "
                         "particle on a micrograph you train on")
    return LoadedData(samples, prep, warnings, pixel_size, pixel_source)


def _load_zarr(path: Path, prep: Preprocessing | None, normalize: str) -> LoadedData:
    images, masks, names, meta = read_zarr_dataset(path)
    if prep is None:
        prep = Preprocessing(float(meta.get("downsample", 1.0)), meta.get("normalize", "none"),
                             float(meta.get("radius", 10.0)), float(meta.get("mask_radius_scale", 1.0)))
    samples = [Sample(n, np.asarray(i, np.float32), np.asarray(m, np.float32), None, tuple(i.shape), str(path))
               for i, m, n in zip(images, masks, names)]
    return LoadedData(samples, prep)


def split_train_val(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out whole labelled micrographs (at least one when there are two or more)."""
    labelled = [i for i, s in enumerate(samples) if s.mask is not None]
    if len(labelled) < 2 or val_fraction <= 0:
        return samples, []
    rng = np.random.default_rng(seed)
    n_val = min(len(labelled) - 1, max(1, int(round(val_fraction * len(labelled)))))
    val_idx = set(rng.choice(labelled, n_val, replace=False).tolist())
    return [s for i, s in enumerate(samples) if i not in val_idx], [samples[i] for i in sorted(val_idx)]


# --------------------------------------------------------------------------- patches


def _pad_to(a: np.ndarray, size: int, value: float) -> np.ndarray:
    ph, pw = max(0, size - a.shape[0]), max(0, size - a.shape[1])
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)), constant_values=value)
    return a


class PatchDataset(Dataset):
    """Random ``patch_size`` patches of (image, mask) from labelled samples.

    ``set_epoch(e)`` draws the epoch's plan: ``n`` (sample, y0, x0) windows. With
    ``positive_share`` set, each batch of ``batch_size`` holds round(share*batch)
    windows that contain a particle pixel, the rest windows without one when such exist.
    """

    def __init__(self, samples: list[Sample], patch_size: int, n: int, seed: int, transform=None,
                 positive_share: float | None = None, batch_size: int = 8):
        self.samples = [s for s in samples if s.mask is not None]
        if not self.samples:
            raise InputError("no labelled micrographs to train on")
        if positive_share is not None and not 0 <= positive_share <= 1:
            raise InputError(f"positive share must be in [0, 1], got {positive_share}")
        self.patch, self.n, self.seed, self.transform = patch_size, n, seed, transform
        self.positive_share, self.batch_size = positive_share, batch_size
        self.images = [_pad_to(s.image, patch_size, 0.0) for s in self.samples]
        self.masks = [_pad_to(s.mask, patch_size, IGNORE) for s in self.samples]
        self.positives = [np.argwhere(m >= 0.5) for m in self.masks]  # (K, 2) rows (y, x)
        self.epoch = 0
        self.plan = self._make_plan(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.plan = self._make_plan(epoch)

    def _random_window(self, rng, k: int) -> tuple[int, int]:
        h, w = self.images[k].shape
        return int(rng.integers(0, h - self.patch + 1)), int(rng.integers(0, w - self.patch + 1))

    def _positive_window(self, rng, k: int) -> tuple[int, int] | None:
        pos = self.positives[k]
        if len(pos) == 0:
            return None
        y, x = pos[rng.integers(len(pos))]
        h, w = self.images[k].shape
        y0 = int(np.clip(y - rng.integers(0, self.patch), 0, h - self.patch))
        x0 = int(np.clip(x - rng.integers(0, self.patch), 0, w - self.patch))
        return y0, x0

    def _negative_window(self, rng, k: int, tries: int = 20) -> tuple[int, int]:
        for _ in range(tries):
            y0, x0 = self._random_window(rng, k)
            if not (self.masks[k][y0 : y0 + self.patch, x0 : x0 + self.patch] >= 0.5).any():
                return y0, x0
        return y0, x0

    def _make_plan(self, epoch: int) -> list[tuple[int, int, int]]:
        rng = np.random.default_rng([self.seed, epoch, 7])
        # micrographs drawn in proportion to their area
        area = np.array([m.size for m in self.masks], dtype=np.float64)
        ks = rng.choice(len(self.samples), self.n, p=area / area.sum())
        plan = []
        if self.positive_share is None:
            return [(int(k), *self._random_window(rng, k)) for k in ks]
        has_pos = [k for k in range(len(self.samples)) if len(self.positives[k])]
        for start in range(0, self.n, self.batch_size):
            b = min(self.batch_size, self.n - start)
            n_pos = int(round(self.positive_share * b)) if has_pos else 0
            batch = []
            for j in range(b):
                if j < n_pos:
                    k = int(rng.choice(has_pos))
                    batch.append((k, *self._positive_window(rng, k)))
                else:
                    k = int(ks[start + j])
                    batch.append((k, *self._negative_window(rng, k)))
            rng.shuffle(batch)
            plan += batch
        return plan

    def __len__(self) -> int:
        return len(self.plan)

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        k, y0, x0 = self.plan[i]
        sl = np.s_[y0 : y0 + self.patch, x0 : x0 + self.patch]
        return self.images[k][sl], self.masks[k][sl]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, mask = self.window(i)
        img, mask = img.copy(), mask.copy()
        if self.transform is not None:
            img, mask = self.transform(img, mask, np.random.default_rng([self.seed, self.epoch, i]))
        return torch.from_numpy(np.ascontiguousarray(img))[None], torch.from_numpy(np.ascontiguousarray(mask))[None]
