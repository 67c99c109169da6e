"""What early stopping (``--patience``) would have done to finished training runs.

Reads the per-epoch validation history (``metrics.json``) of each run folder, and of the
ensemble members under it, and replays it: for each patience P, the epoch at which a run
stops (P epochs after its best validation particle AP) and whether the best epoch it keeps
is the one the full run kept. A run is a pure function of its seed (``cryopick.train``),
so an early-stopped run is the full run cut short: when the best epoch is kept, the picks
are identical and only the training time changes.

usage:
  .venv/bin/python benchmarks/early_stopping.py RUN_DIR [RUN_DIR ...] --patience 4,6,8 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryopick.train import patience_spent


def replay(ap: list[float], patience: int) -> tuple[int, int]:
    """(epochs trained, best epoch kept), 1-based, for validation APs ``ap`` of epochs 1, 2, ...,
    with the rule ``cryopick.train.fit`` applies before each epoch."""
    best, best_epoch = float("-inf"), None
    for epoch, value in enumerate(ap, start=1):
        if patience_spent(epoch - 1, best_epoch, patience):
            return epoch - 1, best_epoch
        if value > best:
            best, best_epoch = value, epoch
    return len(ap), best_epoch


def networks(run: Path) -> list[Path]:
    """The run folder and its ensemble members (``members/seed*``)."""
    return [run, *sorted((run / "members").glob("seed*"))] if (run / "members").is_dir() else [run]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--patience", default="4,6,8")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = []
    for run in args.runs:
        for net in networks(run):
            ap = [r.get("particle_ap") or 0.0 for r in json.loads((net / "metrics.json").read_text())]
            full_epochs, full_best = replay(ap, 0)
            for patience in (int(x) for x in args.patience.split(",")):
                epochs, best = replay(ap, patience)
                rows.append({"network": str(net), "patience": patience, "epochs": epochs, "of": full_epochs,
                             "best_epoch": best, "full_best_epoch": full_best,
                             "val_ap_lost": round(ap[full_best - 1] - ap[best - 1], 4)})
    for patience in sorted({r["patience"] for r in rows}):
        sel = [r for r in rows if r["patience"] == patience]
        changed = [r for r in sel if r["best_epoch"] != r["full_best_epoch"]]
        share = sum(r["epochs"] for r in sel) / sum(r["of"] for r in sel)
        print(f"patience {patience}: {len(sel)} networks, {share:.0%} of the epochs, best epoch changed in "
              f"{len(changed)} (validation AP lost: {', '.join(str(r['val_ap_lost']) for r in changed) or '-'})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
