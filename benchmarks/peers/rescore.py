#!/usr/bin/env python3
"""Rescore cached benchmark rows with the current scorer, without rerunning the pickers.

For every WORK/<set>/<picker>[@tag]/row.json the picks are read back (picks.npz, or the
older layouts: cryopick's picks_val/picks_test STAR files, Topaz's extract_downsampled.tsv;
the DoG picker is cheap and reruns) and scored by compare_pickers.score against the set's
frozen truth; row.json and benchmarks/results/peers_real.json are updated (timings kept).

With ``--edge-margin M`` every picker's picks closer than M particle radii to the
micrograph's edge are dropped first (cryopick's ``pick --edge-margin`` rule, applied to the
peers' cached picks too); those rows are tagged ``+edgeM`` and row.json is left alone.
With ``--crop-band`` truth and picks within one radius of a line where the set cut its
micrograph into pieces (EMPIAR-10017: train / validation quarters, test half) are left out
of the score for every picker: a particle there is whole in the micrograph, so a picker that
refuses picks cut by the edge (cryopick) is not charged for it; rows tagged ``+cropband``.

usage: .venv/bin/python benchmarks/peers/rescore.py [--sets cryoppp-10059,...] [--edge-margin 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare_pickers as cp  # noqa: E402
from datasets import make_set  # noqa: E402

from cryopick.io import find_micrographs, read_labels, read_micrograph  # noqa: E402


def load_picks(work: Path, picker: str, d: dict) -> dict | None:
    if (work / "picks.npz").exists():
        picks: dict = {"val": {}, "test": {}}
        with np.load(work / "picks.npz") as z:
            for key in z.files:
                split, name, what = key.split("|")
                entry = picks[split].setdefault(name, [None, None])
                entry[0 if what == "xy" else 1] = z[key]
        return {s: {k: tuple(v) for k, v in per.items()} for s, per in picks.items()}
    if picker.startswith("cryopick") and (work / "picks_test" / "picks.star").exists():
        return {s: {k: (v.xy, v.scores) for k, v in read_labels(work / f"picks_{s}" / "picks.star").items()}
                for s in ("val", "test")}
    if picker == "topaz" and (work / "extract_downsampled.tsv").exists():
        return _topaz_picks(work, d)
    return None


def _topaz_picks(work: Path, d: dict, table: str = "extract_downsampled.tsv") -> dict:
    """Topaz's extracted picks (downsampled px) back in original px, split into val / test."""
    from topaz_exec import mrc_shape

    rows = [line.split("\t") for line in (work / table).read_text().splitlines()[1:] if line]
    picks: dict = {"val": {}, "test": {}}
    for split in ("val", "test"):
        for path in find_micrographs([str(d[f"{split}_mics"])]):
            ny, nx = mrc_shape(work / "pre_test" / f"{path.stem}.mrc")
            h, w = read_micrograph(path).image.shape
            mine = np.array([[float(r[1]), float(r[2]), float(r[3])] for r in rows if r[0] == path.stem]).reshape(-1, 3)
            picks[split][path.stem] = (mine[:, :2] * [w / nx, h / ny], mine[:, 2])
    return picks


def drop_edge_picks(picks: dict, d: dict, margin: float) -> dict:
    """Picks whose centre lies at least ``margin`` particle radii inside their micrograph."""
    out: dict = {}
    for split, per in picks.items():
        shapes = {p.stem: read_micrograph(p).image.shape for p in find_micrographs([str(d[f"{split}_mics"])])}
        out[split] = {}
        for name, (xy, scores) in per.items():
            h, w = shapes[name]
            xy, scores = np.asarray(xy).reshape(-1, 2), np.asarray(scores)
            inner = np.minimum(np.minimum(xy[:, 0], w - 1 - xy[:, 0]), np.minimum(xy[:, 1], h - 1 - xy[:, 1]))
            keep = inner >= margin * d["radius"]
            out[split][name] = (xy[keep], scores[keep])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(HERE / "work" / "compare"))
    ap.add_argument("--sets", default="")
    ap.add_argument("--pickers", default="", help="only these pickers (comma-separated)")
    ap.add_argument("--edge-margin", type=float, default=None, help="drop picks this many radii from the edge first")
    ap.add_argument("--crop-band", action="store_true",
                    help="truth and picks within one radius of a crop line (EMPIAR-10017's pieces) count for nobody")
    ap.add_argument("--results", default=str(HERE.parent / "results"))
    a = ap.parse_args(argv)
    root = Path(a.out)
    rows = []
    for row_path in sorted(root.glob("*/*/row.json")):
        set_name = row_path.parent.parent.name
        if a.sets and set_name not in a.sets.split(","):
            continue
        row = json.loads(row_path.read_text())
        if a.pickers and row["picker"] not in a.pickers.split(","):
            continue
        d = make_set(set_name, root / set_name, quick=False)
        if row["picker"] == "dog":
            r = cp.run_dog(d, row_path.parent, None)
            row.update(radius_scale=r["radius_scale"])
            picks = r["picks"]
        else:
            picks = load_picks(row_path.parent, row["picker"], d)
        if picks is None:
            print(f"{row_path}: no picks on disk, kept as it was")
            rows.append(row)
            continue
        old = row["cal_F1"]
        if a.edge_margin is not None:
            picks = drop_edge_picks(picks, d, a.edge_margin)
            row = {**row, "tag": f"{row.get('tag', '')}+edge{a.edge_margin:g}", "edge_margin": a.edge_margin}
        if a.crop_band:
            row = {**row, "tag": f"{row.get('tag', '')}+cropband", "crop_band": True}
        row.update(cp.score({"picks": picks}, d, crop_band=a.crop_band), rescored="greedy curve matching")
        if a.edge_margin is None and not a.crop_band:
            row_path.write_text(json.dumps(row, indent=2))
        rows.append(row)
        print(f"{set_name:24} {row['picker']:20} {row.get('tag', ''):18} AP {row['AP']:.3f} best F1 "
              f"{row['best_F1']:.3f} cal F1 {row['cal_F1']:.3f} (was {old:.3f})", flush=True)
    res = Path(a.results)
    merged = cp.merge_results(rows, res / "peers_real.json", {"rescored": True})
    (res / "peers_real.md").write_text(cp.results_markdown(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
