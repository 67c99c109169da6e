"""The self-training section: per-iteration coverage and validation, figure, warnings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import runlayout as layout
from .. import figures
from ..figures import _num
from .page import (
    Section,
    _Context,
    _e,
    _fig,
    _flatten,
    _fmt,
    _kv_table,
    _metric,
    _metric_line,
    _note,
    _pct,
    _read_yaml,
    _sources,
    _table,
)
from .training import _config_tables


def _selftrain_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = layout.summary_path(d, "selftrain")
    sec = Section(ctx.new_id(f"{p}selftrain"), title)
    if not path.is_file():  # the supervised phase or the first iteration is still running
        cfg = _read_yaml(d / layout.CONFIG) if (d / layout.CONFIG).is_file() else None
        sec.body = (_sources([x for x in (d / layout.CONFIG,) if x.is_file()], ctx)
                    + _note("In progress: no self-training iteration has finished yet (no training_summary.json); "
                            "the supervised phase is below."))
        if isinstance(cfg, Mapping):
            sec.children.append(Section(ctx.new_id(f"{p}selftrain-config"), "Configuration", _config_tables(cfg)))
        return sec
    s = layout.read_summary(d, "selftrain").data  # ValueError when unreadable or not an object
    its = [it for it in (s.get("iterations") or []) if isinstance(it, Mapping)]
    base = s.get("baseline") if isinstance(s.get("baseline"), Mapping) else None
    st_cfg = (s.get("config") or {}).get("selftrain") if isinstance(s.get("config"), Mapping) else None
    intro = [_sources([path], ctx)]
    if isinstance(st_cfg, Mapping):
        intro.append(_kv_table(_flatten(st_cfg)))
    sec.body = "".join(intro)

    header = ["Iteration", "Positive thr.", "Negative thr.", "Pseudo-positive %", "Reliable-negative %",
              "Ignored %", "Label agreement", "Train loss", "Val precision", "Val recall", "Val F1", "Val IoU",
              "Warnings"]
    rows, f1s = [], []
    if base is not None:
        rows.append(["baseline (supervised)", "", "", "", "", "", "", "", _metric(base.get("precision")),
                     _metric(base.get("recall")), _metric(base.get("f1")), _metric(base.get("iou")), ""])
        f1s.append(_num(base.get("f1")))
    for it in its:
        v = it.get("validation") if isinstance(it.get("validation"), Mapping) else {}
        rows.append([_fmt(it.get("iteration")), _metric(it.get("positive_threshold"), 3),
                     _metric(it.get("negative_threshold"), 3), _pct(it.get("pseudo_positive")),
                     _pct(it.get("reliable_negative")), _pct(it.get("ignored")), _metric(it.get("label_agreement"), 3),
                     _metric(it.get("train_loss")), _metric(v.get("precision")), _metric(v.get("recall")),
                     _metric(v.get("f1")), _metric(v.get("iou")), str(len(it.get("warnings") or []))])
        f1s.append(_num(v.get("f1")))
    finite = [f for f in f1s if math.isfinite(f)]
    best = max(finite) if finite else None
    bold = [best is not None and f == best for f in f1s]
    if rows:
        table = _table(header, rows, bold=bold)
        caption = ('<p class="caption">Coverage in % of training pixels (pseudo-labels before combining with the '
                   "labels; ignored after combining); label agreement = share of labelled particle pixels the model "
                   "predicts >= 0.5; validation pixel metrics. Best validation F1 in bold.</p>")
    else:
        table, caption = _note("No iteration recorded yet."), ""
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-table"), "Iterations", caption + table))
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-figure"), "Coverage and validation",
                                _fig(figures.selftrain_figure(s), "self-training coverage and validation F1")))
    warns = [str(w) for w in (s.get("warnings") or [])]
    body = ("<ul class=\"warnings\">" + "".join(f"<li>{_e(w)}</li>" for w in warns) + "</ul>") if warns \
        else _note("No warning signs (rising loss, pseudo-positive or ignored coverage above 50%).")
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-warnings"), f"Warnings ({len(warns)})", body))
    final_rows: list[tuple[str, Any]] = [("calibrated pick threshold", s.get("pick_threshold"))]
    if isinstance(s.get("final"), Mapping):
        final_rows.append(("final validation (pixels)", _metric_line(s["final"])))
    if base is not None:
        final_rows.append(("supervised baseline (pixels)", _metric_line(base)))
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-final"), "Result", _kv_table(final_rows)))
    return sec
