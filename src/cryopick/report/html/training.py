"""The training section: configuration, curves, metrics every N epochs, summary."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import runlayout as layout
from .. import figures
from ..figures import _num
from ..summary import PIXEL_VS_PARTICLE
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
    _pct100,
    _Raw,
    _read_yaml,
    _sources,
    _table,
)


KEY_SETTINGS = [("model", "arch"), ("model", "base_features"), ("train", "epochs"), ("train", "batch_size"),
                ("train", "patch_size"), ("train", "lr"), ("train", "scheduler"), ("train", "loss"),
                ("train", "augment"), ("train", "balanced_sampling"), ("train", "seed"), ("train", "device"),
                ("data", "radius"), ("data", "downsample"), ("data", "normalize")]


def _config_tables(cfg: Mapping, sections: Sequence[str] | None = None, key_settings=KEY_SETTINGS) -> str:
    """Version and command, the key settings as one table, every section in a collapsed block."""
    top = [(k, v) for k, v in cfg.items() if not isinstance(v, Mapping)]
    key = [(f"{a}.{b}", cfg[a][b]) for a, b in key_settings
           if isinstance(cfg.get(a), Mapping) and b in cfg[a]]
    parts = [_kv_table(top + key)] if top or key else []
    blocks = []
    for name, sec in cfg.items():
        if isinstance(sec, Mapping) and (sections is None or name in sections):
            rows = _flatten(sec)
            blocks.append(f'<div class="cfg"><h4>{_e(name)}</h4>{_kv_table(rows) if rows else _note("(empty)")}</div>')
    if blocks:
        parts.append(f'<details><summary>All settings</summary><div class="grid">{"".join(blocks)}</div></details>')
    return "".join(parts)


def _epoch_rows(history: list[dict], best_epoch: Any) -> tuple[list[dict], int]:
    """The records shown in the metric table (every N epochs, plus first, best and last) and N.

    N is a round multiple of the validation cadence chosen so that about 12 rows or fewer remain.
    """
    validated = [r for r in history if math.isfinite(_num(r.get("f1")))]
    records = validated or history
    if len(records) <= 15:
        return records, 1
    epochs = [int(e) for e in (_num(r.get("epoch")) for r in records[:-1]) if math.isfinite(e) and e > 0]
    cadence = functools.reduce(math.gcd, epochs) if epochs else 1
    step = cadence
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10_000):
        step = s * cadence
        if sum(1 for e in epochs if e % step == 0) <= 12:
            break
    keep = []
    for i, r in enumerate(records):
        ep = _num(r.get("epoch"))
        if i == 0 or i == len(records) - 1 or (math.isfinite(ep) and ep % step == 0) or ep == _num(best_epoch):
            keep.append(r)
    return keep, step


def _best_epoch(history: list[dict], summary: Mapping | None) -> Any:
    if summary and summary.get("best_epoch") is not None and any(math.isfinite(_num(r.get("f1"))) for r in history):
        return summary.get("best_epoch")
    best, best_f1 = None, -math.inf
    for r in history:
        f = _num(r.get("f1"))
        if math.isfinite(f) and f > best_f1:
            best, best_f1 = r.get("epoch"), f
    return best


def _training_sections(d: Path, p: str, ctx: _Context, title: str) -> Section:
    sec = Section(ctx.new_id(f"{p}training"), title)
    notes, sources = [], []
    history: list[dict] = []
    summary: Mapping | None = None
    cfg: Mapping | None = None
    if (d / layout.METRICS).is_file():
        sources.append(d / layout.METRICS)
        try:
            history = layout.read_history(d / layout.METRICS)
        except ValueError as exc:
            notes.append(str(exc))
    if layout.summary_path(d, "train").is_file():
        sources.append(layout.summary_path(d, "train"))
        try:
            read = layout.read_summary(d, "train")
            summary = read.data if read is not None else None
        except ValueError as exc:
            notes.append(str(exc))
    if (d / layout.CONFIG).is_file():
        sources.append(d / layout.CONFIG)
        try:
            cfg = _read_yaml(d / layout.CONFIG)
            if not isinstance(cfg, Mapping):
                notes.append("config.yaml: not a mapping")
                cfg = None
        except ValueError as exc:
            notes.append(str(exc))
    sec.body = (_sources(sources, ctx) + "".join(_note(n, "warn") for n in notes))

    if cfg is not None:
        sec.children.append(Section(ctx.new_id(f"{p}training-config"), "Configuration", _config_tables(cfg)))

    best_epoch = _best_epoch(history, summary)
    if history:
        sec.children.append(Section(ctx.new_id(f"{p}training-curves"), "Training curves",
                                    _fig(figures.training_curves_figure(history), "training curves",
                                         "Training loss (left) and validation pixel metrics (right); the dotted "
                                         "line marks the epoch of the best validation F1.")))
        rows, step = _epoch_rows(history, best_epoch)
        validated = any(math.isfinite(_num(r.get("f1"))) for r in history)
        table = _table(["Epoch", "Train loss", "Precision", "Recall", "F1", "IoU", "AUC"],
                       [[_fmt(r.get("epoch")), _metric(r.get("train_loss")), _pct100(r.get("precision")),
                         _pct100(r.get("recall")), _pct100(r.get("f1")), _pct100(r.get("iou")), _pct100(r.get("auc"))]
                        for r in rows],
                       bold=[validated and r.get("epoch") == best_epoch for r in rows])
        what = "validated epochs" if validated else "epochs (no validation recorded)"
        every = f"every {step} epochs, plus the first, best and last" if step > 1 else "all " + what
        sec.children.append(Section(ctx.new_id(f"{p}training-table"), "Performance over time",
                                    f'<p class="caption">Validation pixel metrics, {_e(every)}; '
                                    f"best epoch in bold. {_e(PIXEL_VS_PARTICLE)}</p>{table}"))
    else:
        sec.children.append(Section(ctx.new_id(f"{p}training-curves"), "Training curves",
                                    _note("No epoch recorded yet (metrics.json missing or empty).")))

    rows: list[tuple[str, Any]] = []
    if summary is not None:
        bf = summary.get("best_f1")
        rows.append(("best validation F1", _Raw(f"{_e(_metric(bf))} (epoch {_e(_fmt(summary.get('best_epoch')))})")))
        rows.append(("parameters", summary.get("parameters")))
        rows.append(("seconds per epoch", summary.get("seconds_per_epoch")))
        rows.append(("calibrated pick threshold", summary.get("pick_threshold")))
    elif history:
        bf = max((_num(r.get("f1")) for r in history if math.isfinite(_num(r.get("f1")))), default=None)
        rows.append(("best validation F1", _Raw(f"{_e(_metric(bf))} (epoch {_e(_fmt(best_epoch))})")))
    if history:
        secs = [_num(r.get("seconds")) for r in history if math.isfinite(_num(r.get("seconds")))]
        rows.append(("epochs recorded", len(history)))
        if secs:
            rows.append(("training time (s)", round(sum(secs), 1)))
    final = (summary or {}).get("final") if summary else (history[-1] if history else None)
    if isinstance(final, Mapping):
        rows.append((f"last epoch ({_fmt(final.get('epoch'))})", _metric_line(final)))
    if rows:
        sec.children.append(Section(ctx.new_id(f"{p}training-summary"), "Summary", _kv_table(rows)))
    return sec
