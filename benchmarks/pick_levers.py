#!/usr/bin/env python3
"""Pick-time levers on a trained model, no retraining: test-time augmentation and the pick score.

For one benchmark set (its data as written by benchmarks/peers/compare_pickers.py) and a
trained checkpoint, the validation and test micrographs are predicted once with and once
without TTA; every variant (tta x score) is scored like the peer benchmark: validation AP
and F1 choose, test calibrated F1 (threshold from validation) is reported beside them.
Rows are merged into benchmarks/results/pick_levers.json.

usage:
  .venv/bin/python benchmarks/pick_levers.py --set cryoppp-10059 \
      --model benchmarks/peers/work/compare/cryoppp-10059/cryopick@defaults/run/best_model.pt --tag defaults
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE))

from datasets import make_set  # noqa: E402

from cryopick.config import PickConfig  # noqa: E402
from cryopick.io import find_micrographs, read_labels, read_micrograph  # noqa: E402
from cryopick.metrics import evaluate_picks  # noqa: E402
from cryopick.picking import Picker  # noqa: E402
from cryopick.preprocess import preprocess, to_original  # noqa: E402

WORK = HERE / "peers" / "work" / "compare"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True)
    ap.add_argument("--model", required=True, action="append")
    ap.add_argument("--tag", default="")
    ap.add_argument("--results", default=str(HERE / "results" / "pick_levers.json"))
    ap.add_argument("--tta", default="off,on", help="which TTA settings to try")
    ap.add_argument("--min-distance", default="1.0", help="NMS distances to try, as fractions of the radius")
    ap.add_argument("--smooth", default="0.333", help="smoothing sigmas to try, as fractions of the radius")
    ap.add_argument("--scores", default="peak,mean")
    a = ap.parse_args(argv)
    d = make_set(a.set, WORK / a.set, quick=False)
    base = Picker.from_checkpoints(a.model, PickConfig())
    images = {s: {p.stem: preprocess(read_micrograph(p).image, base.prep.downsample, base.prep.normalize)
                  for p in find_micrographs([str(d[f"{s}_mics"])])} for s in ("val", "test")}
    truth = {s: {k: v.xy for k, v in read_labels(d[f"{s}_labels"]).items()} for s in ("val", "test")}
    rows = []
    for tta in [t == "on" for t in a.tta.split(",")]:
        t = time.perf_counter()
        probs = {s: {k: base.probability_with(img, tta) for k, img in images[s].items()} for s in images}
        net_s = (time.perf_counter() - t) / sum(len(v) for v in images.values())
        variants = [(sc, float(m), float(sm)) for sc in a.scores.split(",") for m in a.min_distance.split(",")
                    for sm in a.smooth.split(",")]
        for score, md, sm in variants:
            cfg = dataclasses.replace(PickConfig(), score=score, tta=tta, min_distance=md * base.prep.radius, smooth=sm)
            picker = Picker(base.models, base.prep, cfg)
            picks = {s: {k: _orig(picker.peaks(p), base.prep.downsample) for k, p in probs[s].items()} for s in probs}
            val = evaluate_picks(picks["val"], truth["val"], d["radius"])[0]
            test = evaluate_picks(picks["test"], truth["test"], d["radius"])[0]
            cal = evaluate_picks(picks["test"], truth["test"], d["radius"], threshold=val.best_threshold or 0.0)[0]
            rows.append({"set": a.set, "tag": a.tag, "tta": tta, "score": score, "min_distance": md, "smooth": sm, "val_AP": val.ap,
                         "val_F1": val.best_f1, "test_AP": test.ap, "test_best_F1": test.best_f1, "test_cal_F1": cal.f1,
                         "net_s_per_mic": net_s})
            print(f"{a.set} tta={tta!s:5} score={score:4} min-distance {md:g} r smooth {sm:g} r  val AP {val.ap:.3f} F1 {val.best_f1:.3f}  "
                  f"test AP {test.ap:.3f} cal F1 {cal.f1:.3f}  ({net_s:.1f} s/mic network)", flush=True)
    path = Path(a.results)
    old = json.loads(path.read_text()) if path.exists() else []
    key = lambda r: (r["set"], r["tag"], r["tta"], r["score"], r.get("min_distance", 1.0), r.get("smooth", 0.333))  # noqa: E731
    keys = {key(r) for r in rows}
    path.write_text(json.dumps([r for r in old if key(r) not in keys] + rows, indent=2))
    return 0


def _orig(peaks, factor):
    xy, scores = peaks
    return (to_original(xy, factor) if len(xy) else xy.reshape(0, 2)), scores


if __name__ == "__main__":
    sys.exit(main())
