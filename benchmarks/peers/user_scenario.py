#!/usr/bin/env python3
"""The user's protocol of issue 11: no validation micrographs given, `cryopick train` holds its own out.

compare_pickers.py hands every picker the set's validation micrographs (``--val-images``) and
calibrates the threshold on them. The report that opened issue 11 ran cryopick as a new user
does: all labelled micrographs in ``--images``, only ``--radius`` given, so ``train`` holds out
``--val-fraction`` of them itself (one of five) to choose epochs and the pick threshold; the
threshold was then calibrated on the training micrographs. This script does that on a benchmark
set: its training and validation micrographs together are the user's labelled micrographs, its
test micrographs are only scored. Per run it reports test AP and best F1, F1 at the model's own
pick threshold (what `cryopick pick` uses by default) and F1 at the threshold that is best on
the labelled micrographs (the report's calibration). Rows go to
benchmarks/results/user_scenario.json, keyed by (set, tag).

Run it with the code under test on PYTHONPATH (a frozen copy for a baseline):

  PYTHONPATH=/tmp/snap/src .venv/bin/python benchmarks/peers/user_scenario.py --set cryoppp-10947 --tag base
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from datasets import make_set  # noqa: E402

from cryopick.cli import main as cryopick  # noqa: E402
from cryopick.config import PickConfig  # noqa: E402
from cryopick.io import find_micrographs, read_labels, write_labels  # noqa: E402
from cryopick.metrics import evaluate_picks  # noqa: E402
from cryopick.picking import Picker  # noqa: E402

RESULTS = HERE.parent / "results" / "user_scenario.json"


def labelled_folder(d: dict, out: Path) -> tuple[Path, Path]:
    """The set's training + validation micrographs in one folder (links) and their labels in one file."""
    mics, labels = out / "labelled", out / "labelled.star"
    mics.mkdir(parents=True, exist_ok=True)
    merged = {}
    for split in ("train", "val"):
        for p in find_micrographs([str(d[f"{split}_mics"])]):
            if not (mics / p.name).exists():
                (mics / p.name).symlink_to(p.resolve())
        merged.update(read_labels(d[f"{split}_labels"]))
    write_labels(merged, labels, "star")
    return mics, labels


def picks_of(picker: Picker, folder: Path) -> dict:
    """Every candidate (all scores) of each micrograph in ``folder``, in micrograph px."""
    picks = [picker.pick_file(p, all_candidates=True) for p in find_micrographs([str(folder)])]
    return {k.name: (k.xy, k.scores) for k in picks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--work", default=str(HERE / "work" / "user"))
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--train-args", default="", help="extra flags for cryopick train")
    a = ap.parse_args(argv)
    work = Path(a.work) / a.set
    d = make_set(a.set, work, quick=False)
    mics, labels = labelled_folder(d, work)
    run = work / f"run@{a.tag}"
    t = time.perf_counter()
    rc = cryopick(["train", "--images", str(mics), "--labels", str(labels), "--radius", f"{d['radius']:g}",
                   "--out", str(run), "--overwrite", *a.train_args.split()])
    train_s = time.perf_counter() - t
    if rc != 0:
        return rc
    picker = Picker.from_checkpoints([run / "best_model.pt"], PickConfig())
    truth = {k: v.xy for k, v in read_labels(d["test_labels"]).items()}
    lab_truth = {k: v.xy for k, v in read_labels(labels).items()}
    test, lab = picks_of(picker, d["test_mics"]), picks_of(picker, mics)
    overall = evaluate_picks(test, truth, d["radius"])[0]
    own = evaluate_picks(test, truth, d["radius"], threshold=picker.threshold)[0]
    lab_thr = evaluate_picks(lab, lab_truth, d["radius"])[0].best_threshold
    on_lab = evaluate_picks(test, truth, d["radius"], threshold=lab_thr)[0]
    row = {"set": a.set, "tag": a.tag, "train_args": a.train_args, "AP": overall.ap, "best_F1": overall.best_f1,
           "own_threshold": picker.threshold, "own_F1": own.f1, "own_P": own.precision, "own_R": own.recall,
           "labelled_threshold": lab_thr, "labelled_cal_F1": on_lab.f1, "labelled_cal_P": on_lab.precision,
           "labelled_cal_R": on_lab.recall, "train_s": train_s}
    print(json.dumps(row, indent=1), flush=True)
    path = Path(a.results)
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([r for r in old if (r["set"], r["tag"]) != (a.set, a.tag)] + [row], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
