"""Simulated train / validation / test sets on disk, as the demo and the benchmarks use them.

Training micrographs get the sparse labels (``labelled_fraction`` of the particles,
the case users have); validation and test micrographs get every particle, so
metrics on them are honest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .io import Particles, write_labels
from .io.atomic import atomic_write_json, ensure_out_dir
from .io.micrographs import write_mrc
from .simulate import SimulationConfig, simulate


@dataclass
class SplitPaths:
    root: Path
    train_mics: Path
    train_labels: Path  # sparse (labelled subset)
    train_truth: Path  # every particle of the training micrographs
    val_mics: Path
    val_labels: Path
    test_mics: Path
    test_labels: Path
    radius: float
    particles_per_micrograph: float  # mean over training micrographs: what a user would estimate (Topaz's -n)

    def data_options(self) -> dict:
        """The ``data`` section of a RunConfig that trains on these splits (sparse training labels)."""
        return {"images": [str(self.train_mics)], "labels": str(self.train_labels),
                "val_images": [str(self.val_mics)], "val_labels": str(self.val_labels), "radius": self.radius}


def simulated_splits(out_dir: str | Path, cfg: SimulationConfig, n_train: int, n_val: int, n_test: int) -> SplitPaths:
    out = ensure_out_dir(out_dir)
    sims = simulate(dataclasses.replace(cfg, n=n_train + n_val + n_test))
    parts = {"train": sims[:n_train], "val": sims[n_train : n_train + n_val], "test": sims[n_train + n_val :]}
    for split, items in parts.items():
        for s in items:
            write_mrc(out / split / f"{s.name}.mrc", s.image, pixel_size=s.pixel_size)
        truth = {s.name: Particles(s.coords, None, cfg.diameter) for s in items}
        write_labels(truth, out / f"{split}_truth.star", "star")
        if split == "train":
            sparse = {s.name: Particles(s.labelled, None, cfg.diameter) for s in items}
            write_labels(sparse, out / "train_labels.star", "star")
    atomic_write_json(out / "simulation.json", {"config": dataclasses.asdict(cfg), "n_train": n_train,
                                                 "n_val": n_val, "n_test": n_test,
                                                 "particles": {k: int(sum(len(s.coords) for s in v)) for k, v in parts.items()},
                                                 "labelled": int(sum(len(s.labelled) for s in parts["train"]))})
    return SplitPaths(out, out / "train", out / "train_labels.star", out / "train_truth.star", out / "val",
                      out / "val_truth.star", out / "test", out / "test_truth.star", cfg.diameter / 2,
                      float(round(sum(len(s.coords) for s in parts["train"]) / max(1, n_train))))
