#!/usr/bin/env python3
"""Side-by-side benchmark: cryopick vs Topaz vs a DoG blob picker, one scorer for all.

Sets
  simulated     cryopick's simulator at a hard SNR (0.05) with ice contaminants and a
                carbon edge; training micrographs carry ~35 % of their particles as
                labels, validation and test micrographs every particle.
  empiar-10017  the real 4096x4096 micrograph of ../shared/data/cryosegnet-10017-sample:
                train on its top-left quarter, calibrate on the bottom-left quarter,
                test on the right half.

Every learned picker trains on the same micrographs and labels, is told the same
expected particle count (Topaz's -n), and picks the validation and test micrographs.
Every picker is scored by cryopick's own evaluation (Hungarian matching within the
particle radius = half the diameter): AP, best F1 (with its P and R) on the test
micrographs, and the honest number, F1 at the threshold calibrated on the validation
micrographs (no peeking at test truth).

usage:
  bash benchmarks/peers/setup_topaz.sh        # once: Topaz in its own venv
  .venv/bin/python benchmarks/peers/compare_pickers.py [--quick] [--sets simulated,empiar-10017]
Writes benchmarks/results/peers_<date>.md and .json and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import EMPIAR_10017, machine  # noqa: E402
from dog_picker import dog_pick  # noqa: E402

from cryopick.io import Particles, find_micrographs, read_labels, read_micrograph, write_labels  # noqa: E402
from cryopick.io.micrographs import write_mrc  # noqa: E402
from cryopick.metrics import evaluate_picks  # noqa: E402
from cryopick.simulate import SimulationConfig  # noqa: E402
from cryopick.splits import simulated_splits  # noqa: E402

CRYOPICK = ROOT / ".venv" / "bin" / "cryopick"


# ----------------------------------------------------------------------------- data sets
def make_simulated(out: Path, quick: bool) -> dict:
    cfg = SimulationConfig(size=256 if quick else 512, diameter=32, snr=0.05, labelled_fraction=0.35, contaminants=3,
                           carbon_edge=True, seed=7)
    p = simulated_splits(out, cfg, 2 if quick else 6, 1 if quick else 2, 1 if quick else 3)
    return {"train_mics": p.train_mics, "train_labels": p.train_labels, "val_mics": p.val_mics,
            "val_labels": p.val_labels, "test_mics": p.test_mics, "test_labels": p.test_labels,
            "radius": p.radius, "per_mic": p.particles_per_micrograph, "downsample": 1}


def make_10017(out: Path, quick: bool) -> dict:
    """Quarters of the 10017 micrograph: train top-left, validation bottom-left, test right half."""
    mic = read_micrograph(EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.jpg")
    p = next(iter(read_labels(EMPIAR_10017 / "Falcon_2012_06_12-14_33_35_0.csv").values()))
    h, w = mic.image.shape
    pieces = {"train": (0, h // 2, 0, w // 2), "val": (h // 2, h, 0, w // 2), "test": (0, h, w // 2, w)}
    if quick:  # smaller test piece
        pieces["test"] = (0, h // 2, w // 2, w)
    info = {"radius": (p.diameter or 108) / 2, "downsample": 4}
    for name, (y0, y1, x0, x1) in pieces.items():
        keep = (p.xy[:, 0] >= x0) & (p.xy[:, 0] < x1) & (p.xy[:, 1] >= y0) & (p.xy[:, 1] < y1)
        stem = f"10017_{name}"
        write_mrc(out / name / f"{stem}.mrc", mic.image[y0:y1, x0:x1])
        write_labels({stem: Particles(p.xy[keep] - [x0, y0], None, p.diameter)}, out / f"{name}.star", "star")
        info[f"{name}_mics"], info[f"{name}_labels"] = out / name, out / f"{name}.star"
        info[f"n_{name}"] = int(keep.sum())
    # expected count per training micrograph: the labelled density (some particles are unlabelled)
    info["per_mic"] = float(info["n_train"])
    return info


# ----------------------------------------------------------------------------- pickers
def run_child(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a command, return (wall seconds, peak RSS MB of the child)."""
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed; see {log}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024


def run_cryopick(d: dict, work: Path, a) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    train_cmd = [str(CRYOPICK), "selftrain", "--images", str(d["train_mics"]), "--labels", str(d["train_labels"]),
                 "--val-images", str(d["val_mics"]), "--val-labels", str(d["val_labels"]),
                 "--radius", str(d["radius"]), "--downsample", str(d["downsample"]),
                 "--particles-per-micrograph", str(d["per_mic"]), "--out", str(work / "run"),
                 "--epochs", str(a.epochs), "--iterations", str(a.iterations), "--retrain-epochs", str(a.retrain_epochs),
                 "--base-features", str(a.base_features), "--patch-size", str(a.patch_size),
                 "--patches-per-epoch", str(a.patches_per_epoch), "--dynamic-thresholds", "--device", "cpu",
                 *a.cryopick_args.split()]
    train_s, train_mem = run_child(train_cmd, work / "train.log")
    picks = {}
    pick_s, pick_mem, n_mics = 0.0, 0.0, 0
    for split in ("val", "test"):
        out = work / f"picks_{split}"
        s, m = run_child([str(CRYOPICK), "pick", "--model", str(work / "run" / "final_model.pt"), "--out", str(out),
                          str(d[f"{split}_mics"]), "--all-candidates", "--device", "cpu"], work / f"pick_{split}.log")
        labels = read_labels(out / "picks.star")
        picks[split] = {k: (v.xy, v.scores) for k, v in labels.items()}
        if split == "test":
            n_mics = len(find_micrographs([str(d["test_mics"])]))
            pick_s, pick_mem = s / max(1, n_mics), m
    ckpt_thr = json.loads((work / "run" / "training_summary.json").read_text()).get("pick_threshold")
    return {"picks": picks, "train_s": train_s, "pick_s_per_mic": pick_s, "peak_mb": max(train_mem, pick_mem),
            "own_threshold": ckpt_thr}


def run_topaz_peer(d: dict, work: Path, a) -> dict:
    from run_topaz import run_topaz

    labels = {k: v.xy for k, v in read_labels(d["train_labels"]).items()}
    mics = lambda split: find_micrographs([str(d[f"{split}_mics"])])  # noqa: E731
    test = mics("val") + mics("test")
    r = run_topaz(mics("train"), labels, test, work, d["radius"], downsample=d["downsample"],
                  expected_per_mic=d["per_mic"], num_epochs=a.topaz_epochs, epoch_size=a.topaz_epoch_size, seed=0)
    val_names = {p.stem for p in mics("val")}
    picks = {"val": {k: v for k, v in r["picks"].items() if k in val_names},
             "test": {k: v for k, v in r["picks"].items() if k not in val_names}}
    n_test = len(mics("test"))
    return {"picks": picks, "train_s": r["train_seconds"], "pick_s_per_mic": r["pick_seconds_per_mic"],
            "peak_mb": r["peak_rss_mb"], "updates": a.topaz_epochs * a.topaz_epoch_size, "n_test": n_test}


def run_dog(d: dict, work: Path, a) -> dict:
    import resource

    picks, t_pick, n = {}, 0.0, 0
    for split in ("val", "test"):
        picks[split] = {}
        for path in find_micrographs([str(d[f"{split}_mics"])]):
            img = read_micrograph(path).image
            t = time.perf_counter()
            xy, s = dog_pick(img, d["radius"], downsample=None, polarity="dark")
            if split == "test":
                t_pick += time.perf_counter() - t
                n += 1
            picks[split][path.stem] = (xy, s)
    return {"picks": picks, "train_s": 0.0, "pick_s_per_mic": t_pick / max(1, n),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ----------------------------------------------------------------------------- scoring
def score(result: dict, d: dict) -> dict:
    truth = {split: {k: v.xy for k, v in read_labels(d[f"{split}_labels"]).items()} for split in ("val", "test")}
    val, _ = evaluate_picks(result["picks"]["val"], truth["val"], d["radius"])
    thr = val.best_threshold if val.best_threshold is not None else 0.0
    test_all, _ = evaluate_picks(result["picks"]["test"], truth["test"], d["radius"])
    test_cal, _ = evaluate_picks(result["picks"]["test"], truth["test"], d["radius"], threshold=thr)
    c = test_all.pr_curve
    i = int(np.argmax(c["f1"])) if len(c["f1"]) else None
    return {"AP": test_all.ap, "best_F1": test_all.best_f1,
            "best_P": float(c["precision"][i]) if i is not None else 0.0,
            "best_R": float(c["recall"][i]) if i is not None else 0.0,
            "cal_threshold": thr, "cal_F1": test_cal.f1, "cal_P": test_cal.precision, "cal_R": test_cal.recall,
            "n_truth": test_all.n_truth}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "peers" / "work" / "compare"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--sets", default="simulated,empiar-10017")
    ap.add_argument("--pickers", default="cryopick,topaz,dog")
    ap.add_argument("--quick", action="store_true", help="tiny settings: checks the harness, not the pickers")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--retrain-epochs", type=int, default=8)
    ap.add_argument("--base-features", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=96)
    ap.add_argument("--patches-per-epoch", type=int, default=64)
    ap.add_argument("--cryopick-args", default="", help="extra flags for cryopick selftrain, e.g. '--mask-radius-scale 0.6'")
    ap.add_argument("--topaz-epochs", type=int, default=5)
    ap.add_argument("--topaz-epoch-size", type=int, default=60)
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.iterations, a.retrain_epochs, a.base_features, a.patches_per_epoch = 2, 1, 1, 4, 8
        a.topaz_epochs, a.topaz_epoch_size = 1, 5
    out = Path(a.out)
    makers = {"simulated": make_simulated, "empiar-10017": make_10017}
    runners = {"cryopick": run_cryopick, "topaz": run_topaz_peer, "dog": run_dog}
    rows = []
    t0 = time.perf_counter()
    for set_name in a.sets.split(","):
        d = makers[set_name](out / set_name / "data", a.quick)
        for picker in a.pickers.split(","):
            print(f"[{set_name}] {picker} ...", flush=True)
            r = runners[picker](d, out / set_name / picker, a)
            s = score(r, d)
            rows.append({"set": set_name, "picker": picker, **s, "train_s": r["train_s"],
                         "pick_s_per_mic": r["pick_s_per_mic"], "peak_mb": r["peak_mb"]})
            print(f"   AP {s['AP']:.3f}  best F1 {s['best_F1']:.3f}  calibrated F1 {s['cal_F1']:.3f}", flush=True)
    header = ("| set | picker | AP | best F1 | P | R | calibrated F1 (thr) | train s | pick s/mic | peak MB |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['set']} | {r['picker']} | {r['AP']:.3f} | {r['best_F1']:.3f} | {r['best_P']:.3f} | "
             f"{r['best_R']:.3f} | {r['cal_F1']:.3f} ({r['cal_threshold']:.3g}) | {r['train_s']:.0f} | "
             f"{r['pick_s_per_mic']:.2f} | {r['peak_mb']:.0f} |" for r in rows]
    today = datetime.date.today().isoformat()
    md = (f"# Pickers side by side ({today})\n\nMachine: {machine()}\n\nSettings: {vars(a)}\n\n"
          f"Scorer: cryopick evaluate (Hungarian matching within the particle radius). AP and best F1 (P, R at the "
          f"best F1) on the test micrographs; calibrated F1 at the threshold that maximised F1 on the validation "
          f"micrographs. Total time {time.perf_counter() - t0:.0f} s.\n\n" + header + "\n" + "\n".join(lines) + "\n")
    print("\n" + md)
    res = Path(a.results)
    res.mkdir(parents=True, exist_ok=True)
    tag = "quick_" if a.quick else ""
    (res / f"peers_{tag}{today}.md").write_text(md)
    (res / f"peers_{tag}{today}.json").write_text(json.dumps({"machine": machine(), "date": today,
                                                              "settings": vars(a), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
