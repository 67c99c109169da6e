#!/usr/bin/env python3
"""Overlay of the particle centres recovered from CryoPPP masks (cryopick.masks) on the mask and the
micrograph, to check the recovered truth by eye: benchmarks/results/masks_overlay_<entry>.png.

usage: .venv/bin/python benchmarks/mask_overlay.py [--crop 512]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import SHARED  # noqa: E402

from cryopick.io import find_micrographs, read_micrograph  # noqa: E402
from cryopick.masks import mask_radius, particles_of_mask, read_mask  # noqa: E402


def overlay(entry: str, crop: int, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    root = SHARED / f"cryoppp-{entry}"
    mics = find_micrographs([str(root / s / "images") for s in ("train", "valid", "test")])
    masks = {m: (read_mask(m.parent.parent / "labels" / f"{m.stem}.png"), read_micrograph(m).image.shape) for m in mics}
    r = mask_radius({str(k): v for k, v in masks.items()})
    mic = mics[-1]
    mask, shape = masks[mic]
    p = particles_of_mask(mask, shape, r)
    image = read_micrograph(mic).image
    fig, axes = plt.subplots(1, 2, figsize=(14, 7))
    lo, hi = np.percentile(image, [1, 99])
    axes[0].imshow(image[:crop, :crop], cmap="gray", vmin=lo, vmax=hi)
    axes[1].imshow(np.kron(mask, np.ones((shape[0] // mask.shape[0],) * 2))[:crop, :crop], cmap="gray")
    for ax in axes:
        for x, y in p.xy:
            if x < crop and y < crop:
                ax.add_patch(Circle((x, y), r, fill=False, color="r", lw=1))
        ax.set_axis_off()
    axes[0].set_title(f"{mic.stem[:40]} (top-left {crop} px)")
    axes[1].set_title(f"mask and recovered centres: {len(p)} particles, r = {r:.1f} px")
    fig.tight_layout()
    path = out / f"masks_overlay_{entry}.png"
    fig.savefig(path, dpi=60)
    return f"{entry}: {len(p)} particles on {mic.name}, radius {r:.1f} px -> {path}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--crop", type=int, default=512)
    a = ap.parse_args(argv)
    for entry in ("10059", "10947"):
        print(overlay(entry, a.crop, HERE / "results"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
