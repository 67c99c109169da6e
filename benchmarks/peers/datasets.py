"""The benchmark's data sets, written to disk in one layout every picker reads.

Each maker returns a dict: ``{train,val,test}_mics`` (a folder of micrographs),
``{train,val,test}_labels`` (a RELION STAR file), ``radius`` (particle radius, original
px: the matching radius too), ``per_mic`` (expected particles per training micrograph,
Topaz's -n, given to every learned picker) and ``n_{split}``.

Sets
  simulated       cryopick's simulator at SNR 0.05 with ice contaminants and a carbon
                  edge; training micrographs carry ~35 % of their particles as labels.
  cryoppp-10059,  CryoPPP's own train / valid / test splits (4 / 1 / 5 micrographs,
  cryoppp-10947   1024 px); particle centres recovered from the 256 px disk masks by
                  ``cryopick.masks`` (touching disks split), used as labels for every
                  picker and as the truth; radius = the masks' disk radius.
  empiar-10017    the 4096 px micrograph: train top-left quarter, calibrate bottom-left,
                  test the right half.
  <set>-sparse30  the same, but every training micrograph keeps a seeded random 30 % of
                  its particles; validation and test stay complete; per_mic stays the
                  full count (what a user who labelled 30 % would tell the picker).
  <set>-mics<N>   the few-label regime: training uses a seeded random N of the training
                  micrographs (all their particles); validation and test unchanged;
                  per_mic from the kept micrographs. Combines with -sparse30
                  (``cryoppp-10947-sparse30-mics2``: micrographs first, then particles).
  <set>-labelled<N>  self-training's own case: every training micrograph stays, but only
                  the N of -mics<N> keep their labels; the rest are unlabelled micrographs.
                  per_mic from the labelled ones; a sparse set (the count is given).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import EMPIAR_10017, SHARED  # noqa: E402

from cryopick.io import Particles, find_micrographs, read_labels, read_micrograph, write_labels  # noqa: E402
from cryopick.io.micrographs import write_mrc  # noqa: E402
from cryopick.masks import mask_radius, particles_of_mask, read_mask  # noqa: E402
from cryopick.simulate import SimulationConfig  # noqa: E402
from cryopick.splits import simulated_splits  # noqa: E402

SPLITS = {"train": "train", "val": "valid", "test": "test"}  # ours -> CryoPPP's folder names
SPARSE_FRACTION = 0.3
# The truth of the 2026-12-01 run was recovered with fit 0.95 (cryopick.masks before its fix to 0.7,
# which also keeps isolated disks ~10 % smaller than the median: 19 of 2400 particles on 10947, 4 of
# 6450 on 10059 were missed). Every picker of that run trains and is scored on that same truth; the
# next full rerun should drop this pin (TRUTH_FIT = masks.FIT).
TRUTH_FIT = 0.95


def make_simulated(out: Path, quick: bool) -> dict:
    cfg = SimulationConfig(size=256 if quick else 512, diameter=32, snr=0.05, labelled_fraction=0.35, contaminants=3,
                           carbon_edge=True, seed=7)
    p = simulated_splits(out, cfg, 2 if quick else 6, 1 if quick else 2, 1 if quick else 3)
    d = {"train_mics": p.train_mics, "train_labels": p.train_labels, "val_mics": p.val_mics,
         "val_labels": p.val_labels, "test_mics": p.test_mics, "test_labels": p.test_labels,
         "radius": p.radius, "per_mic": p.particles_per_micrograph}
    return _count(d)


def make_cryoppp(out: Path, quick: bool, entry: str) -> dict:
    """A CryoPPP set: its split folders, mask labels turned into particle centres once."""
    root = SHARED / f"cryoppp-{entry}"
    masks = {}
    for ours, theirs in SPLITS.items():
        mics = find_micrographs([str(root / theirs / "images")])
        if quick:
            mics = mics[:1]
        for m in mics:
            shape = read_micrograph(m).image.shape
            masks[(ours, m)] = (read_mask(root / theirs / "labels" / f"{m.stem}.png"), shape)
    radius = mask_radius({str(k[1]): v for k, v in masks.items()})
    d = {"radius": radius}
    for ours in SPLITS:
        folder = out / ours
        folder.mkdir(parents=True, exist_ok=True)
        labels = {}
        for (split, path), (mask, shape) in masks.items():
            if split != ours:
                continue
            link = folder / path.name
            if not link.exists():
                shutil.copyfile(path, link)
            labels[path.stem] = particles_of_mask(mask, shape, radius, str(path), fit=TRUTH_FIT)
        if not (out / f"{ours}.star").exists():  # frozen once written: every picker of a set sees one truth
            write_labels(labels, out / f"{ours}.star", "star")
        d[f"{ours}_mics"], d[f"{ours}_labels"] = folder, out / f"{ours}.star"
    d = _count(d)
    d["per_mic"] = d["n_train"] / max(1, len(find_micrographs([str(d["train_mics"])])))
    return d


def make_10017(out: Path, quick: bool) -> dict:
    """Quarters of the 10017 micrograph: train top-left, validation bottom-left, test right half."""
    mic = read_micrograph(EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.jpg")
    p = next(iter(read_labels(EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.csv").values()))
    h, w = mic.image.shape
    pieces = {"train": (0, h // 2, 0, w // 2), "val": (h // 2, h, 0, w // 2), "test": (0, h, w // 2, w)}
    if quick:  # smaller test piece
        pieces["test"] = (0, h // 2, w // 2, w)
    d = {"radius": (p.diameter or 108) / 2}
    for name, (y0, y1, x0, x1) in pieces.items():
        keep = (p.xy[:, 0] >= x0) & (p.xy[:, 0] < x1) & (p.xy[:, 1] >= y0) & (p.xy[:, 1] < y1)
        stem = f"10017_{name}"
        write_mrc(out / name / f"{stem}.mrc", mic.image[y0:y1, x0:x1])
        write_labels({stem: Particles(p.xy[keep] - [x0, y0], None, p.diameter)}, out / f"{name}.star", "star")
        d[f"{name}_mics"], d[f"{name}_labels"] = out / name, out / f"{name}.star"
    d = _count(d)
    d["per_mic"] = float(d["n_train"])  # the labelled density (some particles are unlabelled)
    d["crop_lines"] = {f"10017_{name}": crop_lines(piece, h, w) for name, piece in pieces.items()}
    return d


def crop_lines(piece: tuple[int, int, int, int], h: int, w: int) -> list[tuple[int, float]]:
    """The edges of a piece ``(y0, y1, x0, x1)`` of an h x w micrograph that are cuts through it,
    not its own edges, as ``(axis, position)`` in the piece's xy pixels (axis 0: x, 1: y). A
    particle on such a line is whole in the micrograph but cut in the piece."""
    y0, y1, x0, x1 = piece
    return ([(0, 0.0)] * (x0 > 0) + [(0, float(x1 - x0))] * (x1 < w)
            + [(1, 0.0)] * (y0 > 0) + [(1, float(y1 - y0))] * (y1 < h))


def _count(d: dict) -> dict:
    for split in SPLITS:
        d[f"n_{split}"] = int(sum(len(v) for v in read_labels(d[f"{split}_labels"]).values()))
    return d


def sparsify(d: dict, out: Path, fraction: float = SPARSE_FRACTION, seed: int = 0) -> dict:
    """Keep a seeded random ``fraction`` of every training micrograph's particles (at least one)."""
    rng = np.random.default_rng(seed)
    full = read_labels(d["train_labels"])
    kept = {}
    for stem in sorted(full):
        p = full[stem]
        k = max(1, int(round(fraction * len(p)))) if len(p) else 0
        kept[stem] = Particles(p.xy[np.sort(rng.choice(len(p), k, replace=False))], None, p.diameter)
    out.mkdir(parents=True, exist_ok=True)
    write_labels(kept, out / "train_sparse.star", "star")
    s = dict(d, train_labels=out / "train_sparse.star")
    s["n_train_labelled"] = int(sum(len(v) for v in kept.values()))
    return s  # per_mic unchanged: the expected count of the full micrograph


def _chosen_micrographs(d: dict, n: int, seed: int) -> list:
    """A seeded random ``n`` of the training micrographs (the same ones for -mics and -labelled)."""
    paths = sorted(find_micrographs([str(d["train_mics"])]))
    if not 1 <= n <= len(paths):
        raise SystemExit(f"{n} micrographs asked for: the set has {len(paths)} training micrographs")
    return [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False))]


def _labels_of(d: dict, micrographs: list, path: Path) -> dict:
    """The training labels of ``micrographs`` only, written to ``path`` (STAR); returned."""
    stems = {Path(m).stem for m in micrographs}
    kept = {k: v for k, v in read_labels(d["train_labels"]).items() if k in stems}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_labels(kept, path, "star")
    return kept


def labels_on_few(d: dict, out: Path, n: int, seed: int = 0) -> dict:
    """Keep every training micrograph; only the ``n`` of :func:`few_micrographs` keep labels."""
    kept = _labels_of(d, _chosen_micrographs(d, n, seed), out / "train_labelled.star")
    s = dict(d, train_labels=out / "train_labelled.star", sparse=True)
    s["n_train_labelled"] = int(sum(len(v) for v in kept.values()))
    s["per_mic"] = s["n_train_labelled"] / n
    return s


def few_micrographs(d: dict, out: Path, n: int, seed: int = 0) -> dict:
    """Train on a seeded random ``n`` of the training micrographs (linked, not copied)."""
    keep = _chosen_micrographs(d, n, seed)
    folder = out / "train"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in keep:
        (folder / Path(path).name).symlink_to(Path(path).resolve())
    _labels_of(d, keep, out / "train.star")
    s = _count(dict(d, train_mics=folder, train_labels=out / "train.star"))
    s["per_mic"] = s["n_train"] / n
    return s


MAKERS = {"simulated": make_simulated, "empiar-10017": make_10017,
          "cryoppp-10059": lambda out, quick: make_cryoppp(out, quick, "10059"),
          "cryoppp-10947": lambda out, quick: make_cryoppp(out, quick, "10947")}


def make_set(name: str, out: Path, quick: bool) -> dict:
    """``name`` from MAKERS, optionally with ``-sparse30``, ``-mics<N>`` or ``-labelled<N>`` appended."""
    rest, _, labelled = name.partition("-labelled")
    rest, _, mics = rest.partition("-mics")
    base, _, variant = rest.partition("-sparse")
    if base not in MAKERS or not all(x.isdigit() for x in (labelled, mics, variant) if x):
        raise SystemExit(f"unknown set {name!r}; choose from {', '.join(MAKERS)} "
                         "(+ '-sparse30', '-mics<N>', '-labelled<N>')")
    d = MAKERS[base](out / "data", quick)
    if labelled:
        d = labels_on_few(d, out / f"labelled{labelled}", int(labelled))
    if mics:
        d = few_micrographs(d, out / f"mics{mics}", int(mics))
    if variant:
        d = sparsify(d, out / "sparse", fraction=int(variant) / 100)
    return d
