"""Evaluate label files against each other: picks vs truth, written as JSON, CSV and a PR-curve PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .io import read_labels
from .io.atomic import atomic_write_json, atomic_write_text, ensure_out_dir
from .metrics import ParticleMetrics, evaluate_picks


def evaluate_files(picks_path: str, truth_path: str, radius: float | None = None, threshold: float | None = None,
                   out_dir: str | None = None, label_format: str | None = None) -> ParticleMetrics:
    picks = read_labels(Path(picks_path), fmt=label_format)
    truth = read_labels(Path(truth_path), fmt=label_format)
    if not any(len(p) for p in truth.values()):
        raise InputError(f"{truth_path}: the truth holds no particles; nothing to evaluate against")
    if radius is None:
        diam = [p.diameter for p in truth.values() if p.diameter]
        if not diam:
            raise InputError(f"{truth_path}: no particle diameter in the truth; pass --radius (match radius in px)")
        radius = float(np.median(diam)) / 2
    unknown = sorted(set(picks) - set(truth))
    if picks and len(unknown) == len(picks):
        raise InputError(f"{picks_path}: no micrograph name matches the truth ({unknown[:3]} vs {sorted(truth)[:3]})")
    pick_arrays = {k: (v.xy, v.scores if v.scores is not None else np.ones(len(v))) for k, v in picks.items()}
    overall, per_mic = evaluate_picks(pick_arrays, {k: v.xy for k, v in truth.items()}, radius, threshold=threshold)
    if out_dir:
        write_evaluation(overall, per_mic, out_dir, radius)
    return overall


def write_evaluation(overall: ParticleMetrics, per_mic: dict[str, ParticleMetrics], out_dir: str | Path,
                     radius: float) -> None:
    out = ensure_out_dir(out_dir)
    atomic_write_json(out / "metrics.json", {"radius": radius, "overall": overall.as_dict(),
                                             "per_micrograph": {k: v.as_dict() for k, v in per_mic.items()}})
    curve = overall.pr_curve or {}
    rows = ["threshold,precision,recall"] + [f"{t:.6g},{p:.6g},{r:.6g}" for t, p, r in
                                             zip(curve.get("thresholds", []), curve.get("precision", []),
                                                 curve.get("recall", []))]
    atomic_write_text(out / "pr_curve.csv", "\n".join(rows) + "\n")
    try:
        from .report.figures import plot_pr_curve
    except ImportError:
        return
    plot_pr_curve({"picks": overall}, out / "pr_curve.png")
