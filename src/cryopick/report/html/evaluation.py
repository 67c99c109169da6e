"""The evaluation section: particle metrics, the precision-recall curve, per-micrograph table."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import runlayout as layout
from .. import figures
from .page import (
    MAX_TABLE_ROWS,
    Section,
    _Context,
    _fig,
    _fmt,
    _kv_table,
    _metric,
    _natural_key,
    _note,
    _read_json,
    _sources,
    _table,
)


def _read_pr_csv(path: Path) -> dict | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    try:
        return {"thresholds": [float(r["threshold"]) for r in rows],
                "precision": [float(r["precision"]) for r in rows],
                "recall": [float(r["recall"]) for r in rows]}
    except (KeyError, TypeError, ValueError):
        return None


def _evaluation_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = d / layout.METRICS  # an evaluation's: an object (cryopick.runlayout)
    m = _read_json(path)
    overall = m.get("overall") if isinstance(m.get("overall"), Mapping) else {}
    sec = Section(ctx.new_id(f"{p}evaluation"), title)
    sources = [path] + [x for x in (d / layout.PR_CURVE,) if x.is_file()]
    keys = [("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("ap", "average precision (AP)"),
            ("n_picks", "picks"), ("n_truth", "true particles"), ("n_matched", "matched"),
            ("mean_error", "mean centre error (px)"), ("threshold", "score threshold"),
            ("best_f1", "best F1 over thresholds"), ("best_threshold", "threshold of the best F1")]
    rows: list[tuple[str, Any]] = [("match radius (px)", m.get("radius"))]
    rows += [(label, overall.get(k)) for k, label in keys if k in overall]
    sec.body = (_sources(sources, ctx) + _kv_table(rows) + '<p class="caption">Particle metrics: picks matched to '
                "true centres within the match radius; the score threshold is the one the picks were scored at (—: "
                "every pick in the file).</p>")

    curve_src = dict(overall)
    if not curve_src.get("pr_curve") and (d / layout.PR_CURVE).is_file():
        curve_src["pr_curve"] = _read_pr_csv(d / layout.PR_CURVE) or {}
    if curve_src.get("pr_curve"):
        ctx.used_files.add((d / "pr_curve.png").resolve())
        sec.children.append(Section(ctx.new_id(f"{p}evaluation-pr"), "Precision-recall curve",
                                    _fig(figures.pr_curve_figure({"picks": curve_src}), "precision-recall curve",
                                         "Dot: the operating point (all picks, or those above the threshold).")))

    per = m.get("per_micrograph") if isinstance(m.get("per_micrograph"), Mapping) else {}
    if per:
        names = sorted(per, key=_natural_key)
        shown = names[:MAX_TABLE_ROWS]
        table = _table(["Micrograph", "Picks", "Truth", "Matched", "Precision", "Recall", "F1", "AP"],
                       [[n, _fmt(per[n].get("n_picks")), _fmt(per[n].get("n_truth")), _fmt(per[n].get("n_matched")),
                         _metric(per[n].get("precision")), _metric(per[n].get("recall")), _metric(per[n].get("f1")),
                         _metric(per[n].get("ap"))] for n in shown if isinstance(per[n], Mapping)])
        if len(names) > len(shown):
            table += _note(f"… and {len(names) - len(shown)} more micrographs (see metrics.json).")
        sec.children.append(Section(ctx.new_id(f"{p}evaluation-micrographs"), "Per micrograph", table))
    return sec
