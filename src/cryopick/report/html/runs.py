"""Which kinds of run a folder holds, and the sub-folders that hold runs."""

from __future__ import annotations

import os
from pathlib import Path

from ... import runlayout as layout
from ..summary import work_order
from .page import SKIP_DIRS, _natural_key, _read_json


MAX_DEPTH = 2  # sub-runs are looked for this many folders down


def _metrics_kind(path: Path) -> str | None:
    """'training' or 'evaluation' (:func:`cryopick.runlayout.metrics_kind`); unreadable counts as training."""
    try:
        data = _read_json(path)
    except ValueError:
        return "training"  # reported as unreadable in the training section
    return layout.metrics_kind(data)


def _pngs(d: Path) -> list[Path]:
    found = [p for p in d.glob("*.png") if p.is_file()]
    if (d / "figures").is_dir():
        found += [p for p in (d / "figures").rglob("*.png") if p.is_file()]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(d).as_posix()))


def run_kinds(d: str | os.PathLike[str]) -> list[str]:
    """The kinds of run whose files are in folder ``d`` (not looking into sub-runs), in page order."""
    d = Path(d)
    kinds = []
    metrics = d / layout.METRICS
    mkind = _metrics_kind(metrics) if metrics.is_file() else None
    if (d / layout.COMPARISON).is_file() or (d / "comparison.md").is_file():
        kinds.append("comparison")
    if layout.summary_path(d, "selftrain").is_file() or (
            mkind is None and ((d / layout.SUPERVISED).is_dir() or (d / layout.BASELINE_MODEL).is_file())):
        kinds.append("selftrain")  # without its summary: in progress
    pick = (d / layout.PICK_SUMMARY).is_file()
    if mkind == "training" or (mkind is None and layout.summary_path(d, "train").is_file()):
        kinds.append("training")
    elif (d / layout.CONFIG).is_file() and not kinds and not pick and mkind is None:
        kinds.append("training")  # started, no epoch finished yet
    if pick:
        kinds.append("pick")
    if mkind == "evaluation":
        kinds.append("evaluation")
    if _pngs(d):
        kinds.append("figures")
    return kinds


def _subdirs(d: Path) -> list[Path]:
    try:
        subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP_DIRS]
    except OSError:
        return []
    # self-training's supervised phase before its iterations
    # otherwise in the order of the work (training, self-training, picking, evaluation, comparison)
    return sorted(subs, key=lambda p: (work_order(p, run_kinds)[:2], _natural_key(p.name)))


def find_runs(d: str | os.PathLike[str], depth: int = MAX_DEPTH) -> list[Path]:
    """``d`` and its sub-folders (up to ``depth`` levels) that hold a run, parents first."""
    d = Path(d)
    out = [d] if run_kinds(d) else []
    if depth > 0:
        for sub in _subdirs(d):
            out += find_runs(sub, depth - 1)
    return out
