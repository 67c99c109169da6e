#!/usr/bin/env python3
"""Where two pickers agree: each one's picks at its calibrated threshold against the same truth.

For two cached benchmark rows of one set (WORK/<set>/<picker>[@tag]/, as written by
compare_pickers.py), the test truth is split into particles both pickers find, only the
first, only the second, and neither; their false picks into those both make (a pick of one
within a radius of a false pick of the other) and those of one picker alone. Where both
pickers' precision-recall curves coincide and most errors are shared, the labels bound both:
shared false picks on particle-like density are unlabelled particles, shared misses are
particles neither finds (or truth artefacts). ``--overlay`` draws one test micrograph's
crop with the five kinds of circle.

usage: .venv/bin/python benchmarks/peers/agreement.py ROW_A ROW_B [--overlay out.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rescore import load_picks  # noqa: E402

from cryopick.io import find_micrographs, read_labels, read_micrograph  # noqa: E402
from cryopick.metrics import evaluate_picks  # noqa: E402
from cryopick.metrics.particle import match_particles  # noqa: E402

RECALLS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9)


def _row(folder: Path) -> tuple[dict, dict]:
    row = json.loads((folder / "row.json").read_text())
    picks = load_picks(folder, row["picker"], {})
    if picks is None:
        raise SystemExit(f"{folder}: no picks.npz (rerun the row with compare_pickers.py)")
    return row, picks["test"]


def split_truth(truth: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> dict:
    """Masks over ``truth`` (found by both, a only, b only, neither) and over the picks (a's and
    b's false picks, shared when the other picker's false pick lies within ``radius``)."""
    hit, false = [], []
    for picks in (a, b):
        p, t, _ = match_particles(picks, truth, radius)
        h = np.zeros(len(truth), bool)
        h[t] = True
        f = np.ones(len(picks), bool)
        f[p] = False
        hit.append(h)
        false.append(f)
    shared_a = np.zeros(len(a), bool)
    if false[0].any() and false[1].any():
        dist, _ = cKDTree(b[false[1]]).query(a[false[0]])
        shared_a[np.flatnonzero(false[0])[dist < radius]] = True
    return {"both": hit[0] & hit[1], "a_only": hit[0] & ~hit[1], "b_only": ~hit[0] & hit[1],
            "neither": ~hit[0] & ~hit[1], "false_a": false[0], "false_b": false[1], "false_shared_a": shared_a}


def precision_at(picks: dict, truth: dict, radius: float) -> dict:
    m, _ = evaluate_picks(picks, truth, radius)
    r, p = np.asarray(m.pr_curve["recall"]), np.asarray(m.pr_curve["precision"])
    at = {f"{x:g}": (float(p[np.searchsorted(r, x)]) if r.size and r.max() >= x else None) for x in RECALLS}
    return {"AP": m.ap, "max_recall": float(r.max()) if r.size else 0.0, "precision_at_recall": at}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("row_a", type=Path)
    ap.add_argument("row_b", type=Path)
    ap.add_argument("--overlay", type=Path, help="draw the first test micrograph's crop here (PNG)")
    ap.add_argument("--crop", default="0,0,512", help="x0,y0,size of the overlay crop (original px)")
    ap.add_argument("--json", type=Path, help="write the counts here")
    a = ap.parse_args(argv)
    (ra, pa), (rb, pb) = _row(a.row_a), _row(a.row_b)
    data = a.row_a.parent / "data"
    truth = {k: v.xy for k, v in read_labels(data / "test.star").items()}
    radius = float(ra.get("radius") or _radius(a.row_a))
    counts: dict = {}
    for name, t in truth.items():
        xa, sa = pa[name]
        xb, sb = pb[name]
        parts = split_truth(t, np.asarray(xa)[sa >= ra["cal_threshold"]], np.asarray(xb)[sb >= rb["cal_threshold"]], radius)
        for k, v in parts.items():
            counts[k] = counts.get(k, 0) + int(v.sum())
    out = {"set": ra["set"], "a": f"{ra['picker']}@{ra.get('tag', '')}", "b": f"{rb['picker']}@{rb.get('tag', '')}",
           "radius": radius, "n_truth": int(sum(len(t) for t in truth.values())), "counts": counts,
           "a_curve": precision_at(pa, truth, radius), "b_curve": precision_at(pb, truth, radius)}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    if a.overlay:
        _draw(a, data, truth, (ra, pa), (rb, pb), radius)
    return 0


def _radius(row_dir: Path) -> float:
    """The particle radius the row was scored with: from the set's maker (datasets.make_set)."""
    from datasets import make_set

    return float(make_set(json.loads((row_dir / "row.json").read_text())["set"], row_dir.parent, False)["radius"])


def _draw(a, data: Path, truth: dict, row_a, row_b, radius: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = sorted(truth)[0]
    image = read_micrograph([p for p in find_micrographs([str(data / "test")]) if p.stem == name][0]).image
    (ra, pa), (rb, pb) = row_a, row_b
    xa, xb = (np.asarray(p[name][0])[p[name][1] >= r["cal_threshold"]] for r, p in ((ra, pa), (rb, pb)))
    parts = split_truth(truth[name], xa, xb, radius)
    x0, y0, s = (int(v) for v in a.crop.split(","))
    fig, ax = plt.subplots(figsize=(10, 10))
    ax.imshow(image, cmap="gray")
    kinds = [(truth[name][parts["both"]], "lime", "both find"), (truth[name][parts["a_only"]], "orange", "A only"),
             (truth[name][parts["b_only"]], "magenta", "B only"), (truth[name][parts["neither"]], "yellow", "neither finds"),
             (xa[parts["false_shared_a"]], "red", "false pick of both")]
    for xy, colour, label in kinds:
        for i, (x, y) in enumerate(xy):
            ax.add_patch(plt.Circle((x, y), radius, fill=False, color=colour, lw=1.5, label=label if i == 0 else None,
                                    ls="--" if colour == "red" else "-"))
    ax.set_xlim(x0, x0 + s)
    ax.set_ylim(y0 + s, y0)
    ax.legend(loc="upper right", fontsize=9)
    ax.set_title(f"{ra['set']} {name}: A = {ra['picker']}, B = {rb['picker']} (calibrated thresholds)")
    fig.savefig(a.overlay, dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
