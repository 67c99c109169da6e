"""Shared helpers for the benchmark scripts: data sets on disk, timing, memory."""

from __future__ import annotations

import os
import platform
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cryopick.io import Particles, read_labels, read_micrograph, write_labels
from cryopick.io.micrographs import write_mrc

SHARED = Path(os.environ.get("CRYOPICK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EMPIAR_10017 = SHARED / "cryosegnet-10017-sample"


def machine() -> str:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {dev}, torch {torch.__version__}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timer(store: dict, key: str):
    t = time.perf_counter()
    yield
    store[key] = time.perf_counter() - t


def split_10017(out: Path, axis: str = "x") -> dict:
    """EMPIAR-10017 sample cut in two halves: train on the left (x < W/2), test on the right.

    Particles whose centre lies in a half belong to it (coordinates shifted into the crop).
    Returns paths of the two MRC crops and their STAR label files, and the radius (54 px).
    """
    out.mkdir(parents=True, exist_ok=True)
    jpg = EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.jpg"
    mic = read_micrograph(jpg)
    labels = read_labels(EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.csv")
    p = next(iter(labels.values()))
    h, w = mic.image.shape
    half = w // 2
    result = {"radius": (p.diameter or 108) / 2}
    for name, sl, x0 in [("train", np.s_[:, :half], 0), ("test", np.s_[:, half:], half)]:
        crop = mic.image[sl]
        keep = (p.xy[:, 0] >= x0) & (p.xy[:, 0] < x0 + crop.shape[1])
        xy = p.xy[keep] - [x0, 0]
        stem = f"10017_{name}"
        (out / name).mkdir(exist_ok=True)
        write_mrc(out / name / f"{stem}.mrc", crop)
        write_labels({stem: Particles(xy, None, p.diameter)}, out / f"{name}.star", "star")
        result[name] = {"mics": out / name, "labels": out / f"{name}.star", "n": int(keep.sum())}
    return result
