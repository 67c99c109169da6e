"""Self-training benchmark: supervised-only vs after self-training, with ~30 % of particles labelled.

Simulated micrographs (hard SNR); training micrographs carry the sparse labels,
validation and test micrographs every particle. Prints pixel metrics on the
validation micrographs and particle-level precision / recall / F1 / AP on the test
micrographs for the supervised baseline and the self-trained model, side by side.

usage: python benchmarks/selftrain_gain.py [--quick] [--out DIR] [--iterations 3] ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

from cryopick.config import RunConfig  # noqa: E402
from cryopick.evaluation import evaluate_files  # noqa: E402
from cryopick.picking import Picker, pick_to_files  # noqa: E402
from cryopick.selftrain import selftrain_run  # noqa: E402
from cryopick.simulate import SimulationConfig  # noqa: E402
from cryopick.splits import simulated_splits  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_selftrain")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-train", type=int, default=8)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument("--labelled-fraction", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--retrain-epochs", type=int, default=8)
    ap.add_argument("--base-features", type=int, default=8)
    ap.add_argument("--patches-per-epoch", type=int, default=64)
    ap.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--balanced", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--pu", action=argparse.BooleanOptionalAction, default=True,
                    help="positive-unlabelled loss in the supervised phase (needs the expected particle count)")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)
    if a.quick:
        a.n_train, a.size, a.epochs, a.iterations, a.retrain_epochs, a.patches_per_epoch = 3, 192, 3, 1, 2, 16
    out = Path(a.out)
    t0 = time.perf_counter()
    sim = SimulationConfig(size=a.size, diameter=32, snr=a.snr, labelled_fraction=a.labelled_fraction, contaminants=2,
                           seed=a.seed)
    paths = simulated_splits(out / "data", sim, a.n_train, 2, 2)
    cfg = RunConfig.from_dict({
        "data": {**paths.data_options(), "particles_per_micrograph": paths.particles_per_micrograph if a.pu else None},
        "model": {"base_features": a.base_features},
        "train": {"epochs": a.epochs, "patch_size": 96, "patches_per_epoch": a.patches_per_epoch, "seed": a.seed,
                  "balanced_sampling": a.balanced, "device": "cpu"},
        "selftrain": {"iterations": a.iterations, "retrain_epochs": a.retrain_epochs,
                      "dynamic_thresholds": a.dynamic}})
    summary = selftrain_run(cfg, out / "run")

    rows = {}
    for label, ckpt in [("supervised", "baseline_model.pt"), ("self-trained", "final_model.pt")]:
        pdir = out / f"picks_{label}"
        pick_to_files([str(paths.test_mics)], [str(out / "run" / ckpt)], cfg.pick, pdir, all_candidates=True)
        allc = evaluate_files(str(pdir / "picks.star"), str(paths.test_labels), radius=paths.radius)
        picker = Picker.from_checkpoints([str(out / "run" / ckpt)])
        # the honest number: F1 at the threshold calibrated on validation micrographs
        thr = picker.threshold if picker.threshold is not None else 0.5
        cal = evaluate_files(str(pdir / "picks.star"), str(paths.test_labels), radius=paths.radius, threshold=thr)
        rows[label] = {"pixel": summary["baseline"] if label == "supervised" else summary.get("final"),
                       "AP": allc.ap, "best_F1": allc.best_f1, "threshold": thr, "P": cal.precision,
                       "R": cal.recall, "F1": cal.f1}
    print(f"\nself-training benchmark — {machine()}; {a.labelled_fraction:.0%} of training particles labelled, "
          f"SNR {a.snr}, {a.n_train} training micrographs {a.size}px, {time.perf_counter() - t0:.0f} s")
    print(f"{'model':<13} {'pixel P':>8} {'pixel R':>8} {'pixel F1':>8} {'IoU':>6} {'AUC':>6} | "
          f"{'AP':>6} {'best F1':>7} {'thr':>5} {'P':>6} {'R':>6} {'F1':>6}")
    for label, r in rows.items():
        p = r["pixel"] or {}
        print(f"{label:<13} {p.get('precision', float('nan')):8.3f} {p.get('recall', float('nan')):8.3f} "
              f"{p.get('f1', float('nan')):8.3f} {p.get('iou', float('nan')):6.3f} {p.get('auc', float('nan')):6.3f} | "
              f"{r['AP']:6.3f} {r['best_F1']:7.3f} {r['threshold']:5.2f} {r['P']:6.3f} {r['R']:6.3f} {r['F1']:6.3f}")
    for it in summary["iterations"]:
        v = it.get("validation") or {}
        print(f"  iteration {it['iteration']}: thresholds {it['positive_threshold']:.2f}/{it['negative_threshold']:.2f} "
              f"pseudo+ {it['pseudo_positive']:.1f}% reliable- {it['reliable_negative']:.1f}% ignored {it['ignored']:.1f}% "
              f"agreement {it['label_agreement']:.3f} val F1 {v.get('f1', float('nan')):.3f}")
    (out / "result.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
