#!/usr/bin/env python3
"""Side-by-side benchmark: cryopick vs Topaz vs a DoG blob picker, one protocol and scorer for all.

Sets (see datasets.py): simulated, cryoppp-10059, cryoppp-10947, empiar-10017, and each
with -sparse30 (training micrographs keep 30 % of their particles).

Every learned picker trains on the same micrographs and labels, is told the same
expected particle count (Topaz's -n; cryopick's --particles-per-micrograph on the
sparse sets), and picks the validation and test micrographs. Every picker is scored
by cryopick's own evaluation (Hungarian matching within the particle radius): AP,
best F1 (with its P and R) on the test micrographs, and the headline, F1 at the
threshold calibrated on the validation micrographs (no peeking at test truth).

Pickers
  cryopick             `cryopick train` with its defaults, only --radius given (+ the count on sparse sets)
  cryopick-supervised  the same (the PU phase alone), named so on sparse sets
  cryopick-selftrain   `cryopick selftrain` with its defaults (+ the count)
  cryopick-general     `cryopick pick --model general`: the shipped model, no training
  cryopick-ensemble    `cryopick pick --model A --model B ...` over rows already trained (--ensemble)
  topaz                Topaz 0.3.20: pretrained resnet8, GE-binomial, -n, >= 1000 updates
  dog                  DoG blob picker, radius scale tuned on the validation micrographs

Each finished (set, picker) row is cached in WORK/<set>/<picker>/row.json; --reuse
takes cached rows instead of rerunning (the peers need not rerun when cryopick
changes). Rows are merged into benchmarks/results/peers_real.json (+ .md) by
(set, picker, tag).

usage:
  bash benchmarks/peers/setup_topaz.sh        # once: Topaz in its own venv
  .venv/bin/python benchmarks/peers/compare_pickers.py --sets cryoppp-10059,cryoppp-10947 --pickers topaz,dog
  .venv/bin/python benchmarks/peers/compare_pickers.py --sets cryoppp-10059 --pickers cryopick --tag base
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import machine  # noqa: E402
from datasets import make_set  # noqa: E402
from dog_picker import dog_pick  # noqa: E402

from cryopick.io import find_micrographs, read_labels, read_micrograph  # noqa: E402
from cryopick.metrics import evaluate_picks  # noqa: E402

CRYOPICK = ROOT / ".venv" / "bin" / "cryopick"


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


def _pick_splits(models: list[str], d: dict, work: Path, extra: tuple = ()) -> tuple[dict, float, float]:
    """``cryopick pick --all-candidates`` on the validation and test micrographs: (picks, s/mic, peak MB)."""
    picks, pick_s, pick_mem = {}, 0.0, 0.0
    for split in ("val", "test"):
        out = work / f"picks_{split}"
        if out.exists():
            shutil.rmtree(out)
        model_args = [x for m in models for x in ("--model", m)]
        s, mem = run_child([str(CRYOPICK), "pick", *model_args, "--out", str(out), str(d[f"{split}_mics"]),
                            "--all-candidates", "--device", "cpu", *extra], work / f"pick_{split}.log")
        picks[split] = {k: (v.xy, v.scores) for k, v in read_labels(out / "picks.star").items()}
        if split == "test":
            pick_s, pick_mem = s / max(1, len(find_micrographs([str(d["test_mics"])]))), mem
    return picks, pick_s, pick_mem


def run_cryopick(d: dict, work: Path, a, command: str = "train") -> dict:
    """``cryopick train`` (or ``selftrain``) with its defaults: micrographs, labels, validation, radius."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cmd = [str(CRYOPICK), command, "--images", str(d["train_mics"]), "--labels", str(d["train_labels"]),
           "--val-images", str(d["val_mics"]), "--val-labels", str(d["val_labels"]),
           "--radius", str(d["radius"]), "--out", str(work / "run"), "--device", "cpu", *a.cryopick_args.split()]
    if d.get("sparse") or a.quick:
        cmd += ["--particles-per-micrograph", str(d["per_mic"])]
    if a.quick:
        cmd += ["--epochs", "1", "--base-features", "4", "--patches-per-epoch", "8", "--patch-size", "64"]
        if command == "selftrain":
            cmd += ["--iterations", "1", "--retrain-epochs", "1"]
    train_s, train_mem = run_child(cmd, work / "train.log")
    model = work / "run" / ("final_model.pt" if command == "selftrain" else "best_model.pt")
    picks, pick_s, pick_mem = _pick_splits([str(model)], d, work, tuple(a.pick_args.split()))
    return {"picks": picks, "train_s": train_s, "pick_s_per_mic": pick_s, "peak_mb": max(train_mem, pick_mem)}


def run_cryopick_general(d: dict, work: Path, a) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    extra = ("--radius", str(d["radius"]), *a.pick_args.split())
    picks, pick_s, pick_mem = _pick_splits([a.general_model or "general"], d, work, extra)
    return {"picks": picks, "train_s": 0.0, "pick_s_per_mic": pick_s, "peak_mb": pick_mem}


def run_cryopick_ensemble(d: dict, work: Path, a) -> dict:
    """``cryopick pick --model A --model B ...``: the maps of rows already trained (``--ensemble``,
    row folders with ``{set}`` for the set's name) averaged; its training time is theirs summed."""
    work.mkdir(parents=True, exist_ok=True)
    rows = [Path(p.format(set=d["name"])) for p in a.ensemble.split(",") if p]
    if len(rows) < 2:
        raise SystemExit("cryopick-ensemble: give --ensemble ROW1,ROW2[,...] (row folders, {set} for the set)")
    models = [str(r / "run" / "best_model.pt") for r in rows]
    picks, pick_s, pick_mem = _pick_splits(models, d, work, tuple(a.pick_args.split()))
    train_s = sum(json.loads((r / "row.json").read_text())["train_s"] for r in rows)
    return {"picks": picks, "train_s": train_s, "pick_s_per_mic": pick_s, "peak_mb": pick_mem}


def topaz_downsample(radius: float) -> int:
    """Topaz's downsampling: particles ~28 px across (round(diameter / 28)), fixed here so that
    changes to cryopick's own rule do not change the peer (10059: 1, 10947: 2, 10017: 4, simulated: 1)."""
    return max(1, int(round(2 * radius / 28)))


def run_topaz_peer(d: dict, work: Path, a) -> dict:
    from run_topaz import TopazSettings, run_topaz

    labels = {k: v.xy for k, v in read_labels(d["train_labels"]).items()}
    mics = lambda split: find_micrographs([str(d[f"{split}_mics"])])  # noqa: E731
    test = mics("val") + mics("test")
    settings = TopazSettings(num_epochs=a.topaz_epochs, epoch_size=a.topaz_epoch_size, seed=0)
    r = run_topaz(mics("train"), labels, test, work, d["radius"], topaz_downsample(d["radius"]),
                  d["per_mic"], settings)
    val_names = {p.stem for p in mics("val")}
    picks = {"val": {k: v for k, v in r["picks"].items() if k in val_names},
             "test": {k: v for k, v in r["picks"].items() if k not in val_names}}
    return {"picks": picks, "train_s": r["train_seconds"], "pick_s_per_mic": r["pick_seconds_per_mic"],
            "peak_mb": r["peak_rss_mb"], "updates": a.topaz_epochs * a.topaz_epoch_size,
            "method_used": r.get("method_used")}


DOG_SCALES = (0.6, 0.8, 1.0, 1.25)  # radius multipliers tried on the validation micrographs


def run_dog(d: dict, work: Path, a) -> dict:
    """DoG at the radius scale (of DOG_SCALES) with the best validation AP; timed on the test set."""
    import resource

    images = {split: {p.stem: read_micrograph(p).image for p in find_micrographs([str(d[f"{split}_mics"])])}
              for split in ("val", "test")}
    truth = {k: v.xy for k, v in read_labels(d["val_labels"]).items()}
    best = (-1.0, 1.0)
    for scale in DOG_SCALES:
        val = {k: dog_pick(img, d["radius"] * scale, downsample=None, polarity="dark",
                           min_distance=d["radius"]) for k, img in images["val"].items()}
        ap = evaluate_picks(val, truth, d["radius"])[0].ap
        best = max(best, (ap, scale))
    scale = best[1]
    picks = {}
    for split in ("val", "test"):
        t = time.perf_counter()
        picks[split] = {k: dog_pick(img, d["radius"] * scale, downsample=None, polarity="dark",
                                    min_distance=d["radius"]) for k, img in images[split].items()}
    t_pick = time.perf_counter() - t
    return {"picks": picks, "train_s": 0.0, "pick_s_per_mic": t_pick / max(1, len(images["test"])),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "radius_scale": scale}


RUNNERS = {"cryopick": run_cryopick, "cryopick-supervised": run_cryopick,
           "cryopick-selftrain": lambda d, w, a: run_cryopick(d, w, a, "selftrain"),
           "cryopick-general": run_cryopick_general, "cryopick-ensemble": run_cryopick_ensemble,
           "topaz": run_topaz_peer, "dog": run_dog}


# ----------------------------------------------------------------------------- scoring
def outside_crop_band(xy: np.ndarray, lines, radius: float) -> np.ndarray:
    """Which of ``xy`` lie at least one radius from every crop line (``datasets.crop_lines``)."""
    xy = np.asarray(xy).reshape(-1, 2)
    keep = np.ones(len(xy), bool)
    for axis, pos in lines:
        keep &= np.abs(xy[:, axis] - pos) >= radius
    return keep


def _without_crop_band(truth: dict, result: dict, d: dict) -> tuple[dict, dict]:
    """``truth`` and ``result``'s picks less those within one radius of the set's crop lines."""
    lines, r = d["crop_lines"], d["radius"]
    truth = {s: {k: v[outside_crop_band(v, lines.get(k, ()), r)] for k, v in t.items()} for s, t in truth.items()}
    picks: dict = {}
    for split, per in result["picks"].items():
        picks[split] = {}
        for name, (xy, scores) in per.items():
            keep = outside_crop_band(xy, lines.get(name, ()), r)
            picks[split][name] = (np.asarray(xy).reshape(-1, 2)[keep], np.asarray(scores)[keep])
    return truth, {"picks": picks}


def score(result: dict, d: dict, crop_band: bool = False) -> dict:
    """Validation AP / best F1, test AP / best F1, and test F1 at the validation's best threshold.
    ``crop_band``: truth and picks within one radius of a line where the set cut a micrograph into
    pieces (EMPIAR-10017) count for nobody; there a particle is whole in the micrograph, cut in the piece."""
    truth = {split: {k: v.xy for k, v in read_labels(d[f"{split}_labels"]).items()} for split in ("val", "test")}
    if crop_band and d.get("crop_lines"):
        truth, result = _without_crop_band(truth, result, d)
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
            "n_truth": test_all.n_truth, "val_AP": val.ap, "val_best_F1": val.best_f1}


RESULT_KEYS = ("set", "picker", "tag", "AP", "best_F1", "best_P", "best_R", "cal_threshold", "cal_F1", "cal_P",
               "cal_R", "n_truth", "train_s", "pick_s_per_mic", "peak_mb")


def save_picks(picks: dict, path: Path) -> None:
    arrays = {f"{split}|{name}|{what}": np.asarray(v[i]) for split, per in picks.items()
              for name, v in per.items() for i, what in enumerate(("xy", "scores"))}
    np.savez_compressed(path, **arrays)


def run_row(set_name: str, picker: str, d: dict, work: Path, a) -> dict:
    cached = work / "row.json"
    if a.reuse and cached.exists():
        row = json.loads(cached.read_text())
        print(f"[{set_name}] {picker}: cached ({cached})", flush=True)
        return row
    print(f"[{set_name}] {picker} ...", flush=True)
    r = RUNNERS[picker](d, work, a)
    extra = {k: r[k] for k in ("updates", "method_used", "radius_scale") if k in r}
    row = {"set": set_name, "picker": picker, "tag": a.tag,
           **score(r, d), "train_s": r["train_s"], "pick_s_per_mic": r["pick_s_per_mic"], "peak_mb": r["peak_mb"],
           "cryopick_args": a.cryopick_args if picker.startswith("cryopick") else "",
           "pick_args": a.pick_args if picker.startswith("cryopick") else "",
           "general_model": a.general_model if picker == "cryopick-general" else "",
           "ensemble": a.ensemble if picker == "cryopick-ensemble" else "", **extra}
    work.mkdir(parents=True, exist_ok=True)
    save_picks(r["picks"], work / "picks.npz")  # so a row can be rescored against a new truth
    cached.write_text(json.dumps(row, indent=2))
    print(f"   AP {row['AP']:.3f}  best F1 {row['best_F1']:.3f}  calibrated F1 {row['cal_F1']:.3f}  "
          f"train {row['train_s']:.0f} s", flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    header = ("| set | picker | tag | AP | best F1 | P | R | calibrated F1 (thr) | cal P | cal R | train s | "
              "pick s/mic | peak MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['set']} | {r['picker']} | {r.get('tag', '')} | {r['AP']:.3f} | {r['best_F1']:.3f} | "
             f"{r['best_P']:.3f} | {r['best_R']:.3f} | {r['cal_F1']:.3f} ({r['cal_threshold']:.3g}) | "
             f"{r['cal_P']:.3f} | {r['cal_R']:.3f} | {r['train_s']:.0f} | {r['pick_s_per_mic']:.2f} | "
             f"{r['peak_mb']:.0f} |" for r in rows]
    return header + "\n" + "\n".join(lines) + "\n"


def results_markdown(rows: list[dict]) -> str:
    return (f"# Pickers side by side\n\nMachine: {machine()} (2 shared cores: times are upper bounds; compare "
            f"pickers of one set, as ratios)\n\nProtocol: benchmarks/peers/compare_pickers.py (docstring). Scorer: "
            f"matching within the particle radius (greedy in score order for the curve). AP, best F1 (P, R at "
            f"it) on the test micrographs; calibrated F1 (P, R) at the threshold that maximised F1 on the "
            f"validation micrographs.\n\n" + markdown(rows))


def merge_results(rows: list[dict], path: Path, settings: dict) -> list[dict]:
    """Replace rows of the same (set, picker, tag) in ``path`` (JSON), keep the others."""
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    key = lambda r: (r["set"], r["picker"], r.get("tag", ""))  # noqa: E731
    new_keys = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in new_keys] + rows
    merged.sort(key=lambda r: (r["set"], r["picker"], r.get("tag", "")))
    path.write_text(json.dumps({"machine": machine(), "updated": datetime.date.today().isoformat(),
                                "last_settings": settings, "rows": merged}, indent=2))
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "peers" / "work" / "compare"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--sets", default="simulated,cryoppp-10059,cryoppp-10947,empiar-10017")
    ap.add_argument("--pickers", default="cryopick,topaz,dog")
    ap.add_argument("--quick", action="store_true", help="tiny settings: checks the harness, not the pickers")
    ap.add_argument("--reuse", action="store_true", help="take cached rows (WORK/<set>/<picker>/row.json)")
    ap.add_argument("--tag", default="", help="names these rows in the results: a cryopick variant (a lever), or a peer rerun (e.g. on another machine)")
    ap.add_argument("--cryopick-args", default="", help="extra flags for cryopick train/selftrain")
    ap.add_argument("--pick-args", default="", help="extra flags for cryopick pick, e.g. '--tta'")
    ap.add_argument("--general-model", default="", help="cryopick-general: this checkpoint instead of the shipped "
                                                         "one (leave-one-dataset-out models)")
    ap.add_argument("--ensemble", default="", help="cryopick-ensemble: row folders of trained cryopick rows, comma "
                                                    "separated, {set} standing for the set (their maps averaged)")
    ap.add_argument("--topaz-epochs", type=int, default=4)
    ap.add_argument("--topaz-epoch-size", type=int, default=250)
    a = ap.parse_args(argv)
    if a.quick:
        a.topaz_epochs, a.topaz_epoch_size = 1, 5
    out = Path(a.out) / ("quick" if a.quick else "")
    rows = []
    t0 = time.perf_counter()
    for set_name in a.sets.split(","):
        d = make_set(set_name, out / set_name, a.quick)
        d["sparse"] = d.get("sparse") or "-sparse" in set_name
        d["name"] = set_name
        for picker in a.pickers.split(","):
            sub = picker + (f"@{a.tag}" if a.tag else "")
            rows.append(run_row(set_name, picker, d, out / set_name / sub, a))
    res = Path(a.results)
    res.mkdir(parents=True, exist_ok=True)
    name = "peers_quick" if a.quick else "peers_real"
    merged = merge_results(rows, res / f"{name}.json", vars(a))
    md = results_markdown(merged)
    (res / f"{name}.md").write_text(md)
    print("\n" + markdown(rows) + f"\ntotal {time.perf_counter() - t0:.0f} s; merged into {res / name}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
