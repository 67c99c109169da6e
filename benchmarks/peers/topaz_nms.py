#!/usr/bin/env python3
"""Topaz's extraction radius (its non-maximum suppression) tuned on the validation micrographs,
as cryopick's --min-distance is: re-extract a trained Topaz run at several radii (no retraining)
and keep the radius with the best validation AP; the row topaz@nms is merged into the results.

usage: .venv/bin/python benchmarks/peers/topaz_nms.py --set cryoppp-10059 [--factors 1,0.8,0.6,0.4]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare_pickers as cp  # noqa: E402
from datasets import make_set  # noqa: E402
from rescore import _topaz_picks  # noqa: E402
from topaz_exec import _Topaz  # noqa: E402

from cryopick.io import find_micrographs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", required=True)
    ap.add_argument("--factors", default="1,0.8,0.6,0.4")
    ap.add_argument("--out", default=str(HERE / "work" / "compare"))
    a = ap.parse_args(argv)
    work = Path(a.out) / a.set / "topaz"
    d = make_set(a.set, Path(a.out) / a.set, quick=False)
    row = json.loads((work / "row.json").read_text())
    model = sorted(work.glob("model/model_epoch*.sav"), key=lambda p: int(re.search(r"(\d+)\.sav$", p.name).group(1)))[-1]
    ds = cp.topaz_downsample(d["radius"])
    tz = _Topaz(HERE / ".venv-topaz", seed=0)
    mics = [work / "pre_test" / f"{p.stem}.mrc" for s in ("val", "test") for p in find_micrographs([str(d[f"{s}_mics"])])]
    best = None
    for f in [float(x) for x in a.factors.split(",")]:
        r = max(1, int(round(f * d["radius"] / ds)))
        table = f"extract_r{r}.tsv"
        if not (work / table).exists():
            tz.run(work / "logs" / f"extract_r{r}.log", "extract", "-m", model, "-r", r, "-t", -10, "-d", -1,
                   "-o", work / table, *mics)
        s = cp.score({"picks": _topaz_picks(work, d, table)}, d)
        val = cp.evaluate_picks(_topaz_picks(work, d, table)["val"],
                                {k: v.xy for k, v in cp.read_labels(d["val_labels"]).items()}, d["radius"])[0]
        print(f"{a.set} topaz extract -r {r} ({f:g} x radius): val AP {val.ap:.3f}  test AP {s['AP']:.3f} "
              f"cal F1 {s['cal_F1']:.3f}", flush=True)
        if best is None or val.ap > best[0]:
            best = (val.ap, f, r, s)
    _, f, r, s = best
    tuned = dict(row, **s, tag="nms", extract_radius_factor=f, extract_radius=r)
    (work.parent / "topaz@nms").mkdir(exist_ok=True)
    (work.parent / "topaz@nms" / "row.json").write_text(json.dumps(tuned, indent=2))
    res = HERE.parent / "results"
    merged = cp.merge_results([tuned], res / "peers_real.json", {"topaz_nms": a.set})
    (res / "peers_real.md").write_text(cp.results_markdown(merged))
    print(f"chosen on validation: -r {r} ({f:g} x radius): test AP {s['AP']:.3f}, calibrated F1 {s['cal_F1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
