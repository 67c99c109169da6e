"""Picking benchmark: particle-level precision / recall / F1 / AP, and the cost of a 4096x4096 micrograph.

(a) simulated micrographs (fully labelled training set, hard SNR): train, pick the
    test micrographs, score with Hungarian matching within the particle radius;
(b) EMPIAR-10017 (../shared/data/cryosegnet-10017-sample): train on the left half of
    the micrograph, pick and score the right half;
(c) time and peak memory of picking the full 4096x4096 10017 micrograph on CPU (tiled).

usage: python benchmarks/picking.py [--quick] [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import EMPIAR_10017, machine, split_10017  # noqa: E402

from cryopick.config import PickConfig, RunConfig  # noqa: E402
from cryopick.evaluation import evaluate_files  # noqa: E402
from cryopick.picking import Picker, pick_to_files  # noqa: E402
from cryopick.pipeline import train_run  # noqa: E402
from cryopick.simulate import SimulationConfig  # noqa: E402
from cryopick.splits import simulated_splits  # noqa: E402


def train_and_score(name, train_mics, train_labels, val_mics, val_labels, test_mics, test_labels, radius, out, a):
    cfg = RunConfig.from_dict({
        "data": {"images": [str(train_mics)], "labels": str(train_labels), "radius": radius,
                 "val_images": [str(val_mics)] if val_mics else [], "val_labels": str(val_labels) if val_labels else None},
        "model": {"base_features": a.base_features},
        "train": {"epochs": a.epochs, "patch_size": a.patch_size, "patches_per_epoch": a.patches_per_epoch,
                  "device": "cpu"}})
    t = time.perf_counter()
    train_run(cfg, out / name / "train")
    train_s = time.perf_counter() - t
    ckpt = out / name / "train" / "best_model.pt"
    pdir = out / name / "picks"
    summary = pick_to_files([str(test_mics)], [str(ckpt)], PickConfig(), pdir, all_candidates=True)
    allc = evaluate_files(str(pdir / "picks.star"), str(test_labels), radius=radius)
    thr = Picker.from_checkpoints([str(ckpt)]).threshold or 0.5
    cal = evaluate_files(str(pdir / "picks.star"), str(test_labels), radius=radius, threshold=thr)
    return {"set": name, "AP": allc.ap, "best_F1": allc.best_f1, "threshold": thr, "P": cal.precision,
            "R": cal.recall, "F1": cal.f1, "mean_error_px": cal.mean_error, "train_s": train_s,
            "pick_s_per_mic": summary["seconds_per_micrograph"], "ckpt": str(ckpt)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_picking")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--base-features", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--patches-per-epoch", type=int, default=64)
    ap.add_argument("--skip-10017", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.base_features, a.patch_size, a.patches_per_epoch = 2, 4, 64, 8
    out = Path(a.out)
    rows = []
    sim = simulated_splits(out / "sim_data", SimulationConfig(size=384 if not a.quick else 128, diameter=32 if not
                                                              a.quick else 16, snr=0.05, contaminants=2, seed=3),
                           6 if not a.quick else 2, 2 if not a.quick else 1, 2 if not a.quick else 1)
    rows.append(train_and_score("simulated", sim.train_mics, sim.train_truth, sim.val_mics, sim.val_labels,
                                sim.test_mics, sim.test_labels, sim.radius, out, a))
    if not a.skip_10017 and EMPIAR_10017.is_dir():
        halves = split_10017(out / "10017_data")
        # train on the left half (10 % of it held out for calibration by the default split), test on the right
        rows.append(train_and_score("EMPIAR-10017 (train left half, test right half)", halves["train"]["mics"],
                                    halves["train"]["labels"], None, None, halves["test"]["mics"],
                                    halves["test"]["labels"], halves["radius"], out, a))
        # (c) the whole 4096x4096 micrograph, tiled, on CPU
        picker = Picker.from_checkpoints([rows[-1]["ckpt"]], PickConfig(tile_size=512, batch_size=4))
        jpg = EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.jpg"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        picks = picker.pick_file(jpg)
        rows.append({"set": "4096x4096 pick (whole 10017 micrograph)", "seconds": time.perf_counter() - t,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                     "peak_rss_before_mb": before, "n_picks": len(picks.xy)})
    print(f"\npicking benchmark — {machine()}")
    print(f"{'set':<50} {'AP':>6} {'bestF1':>6} {'thr':>5} {'P':>6} {'R':>6} {'F1':>6} {'err px':>6} "
          f"{'train s':>7} {'pick s/mic':>10}")
    for r in rows:
        if "AP" in r:
            print(f"{r['set']:<50} {r['AP']:6.3f} {r['best_F1']:6.3f} {r['threshold']:5.2f} {r['P']:6.3f} "
                  f"{r['R']:6.3f} {r['F1']:6.3f} {r['mean_error_px'] or float('nan'):6.2f} {r['train_s']:7.0f} "
                  f"{r['pick_s_per_mic']:10.2f}")
        else:
            print(f"{r['set']}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(process peak before picking {r['peak_rss_before_mb']:.0f} MB), {r['n_picks']} picks")
    (out / "result.json").write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
