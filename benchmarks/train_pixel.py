"""Supervised training benchmark: validation pixel metrics after a few CPU minutes.

Simulated micrographs (SNR 0.05, every particle labelled), the default loss and
sampling, U-Net (or --arch attention-unet). Prints the validation precision, recall,
F1, IoU and AUC at every evaluation and the time per epoch.

usage: python benchmarks/train_pixel.py [--quick] [--arch unet] [--epochs 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

from cryopick.config import RunConfig  # noqa: E402
from cryopick.pipeline import train_run  # noqa: E402
from cryopick.simulate import SimulationConfig  # noqa: E402
from cryopick.splits import simulated_splits  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_train")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--base-features", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=96)
    ap.add_argument("--patches-per-epoch", type=int, default=64)
    ap.add_argument("--snr", type=float, default=0.05)
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.base_features, a.patches_per_epoch = 2, 4, 8
    out = Path(a.out)
    paths = simulated_splits(out / "data", SimulationConfig(size=384, diameter=32, snr=a.snr, seed=5), 6, 2, 0)
    cfg = RunConfig.from_dict({
        "data": paths.data_options(), "model": {"arch": a.arch, "base_features": a.base_features},
        "train": {"epochs": a.epochs, "patch_size": a.patch_size, "patches_per_epoch": a.patches_per_epoch,
                  "device": "cpu"}})
    t = time.perf_counter()
    result, resolved = train_run(cfg, out / "run", log=lambda m: None)
    total = time.perf_counter() - t
    print(f"\nsupervised training benchmark — {machine()}\n{a.arch}, base width {a.base_features}, patch "
          f"{resolved.train.patch_size}, {resolved.train.patches_per_epoch} patches/epoch, loss {resolved.train.loss}, "
          f"SNR {a.snr}, 6 training micrographs 384 px (all particles labelled); {total:.0f} s, "
          f"{result.seconds_per_epoch:.1f} s/epoch")
    print(f"{'epoch':>5} {'loss':>7} {'P':>6} {'R':>6} {'F1':>6} {'IoU':>6} {'AUC':>6}")
    for r in result.history:
        if "f1" in r:
            print(f"{r['epoch']:5d} {r['train_loss']:7.4f} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} "
                  f"{r['iou']:6.3f} {r['auc']:6.3f}")
    print(f"best validation F1 {result.best_f1:.3f} at epoch {result.best_epoch}")


if __name__ == "__main__":
    main()
