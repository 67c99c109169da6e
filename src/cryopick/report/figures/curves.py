"""Figures of numbers over epochs, iterations or micrographs: training curves, precision-recall,
self-training coverage and validation, picks per micrograph."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .base import METRIC_COLOURS, RUN_COLOURS, _no_data, _num, _series, save_figure

# --------------------------------------------------------------------------- training curves


def _runs(history) -> dict[str, list]:
    if isinstance(history, Mapping):
        return {str(k): list(v or []) for k, v in history.items()}
    if history is None:
        return {"": []}
    return {"": list(history)}


def training_curves_figure(history, title: str | None = None) -> Figure:
    """Train loss and validation precision / recall / F1 / IoU / AUC over epochs.

    ``history``: a list of per-epoch records (``metrics.json``), or a dict name -> such a list
    to overlay several runs (then one colour per run: loss, F1, precision and recall panels).
    Records without validation keys (epochs that were not evaluated) only contribute the loss.
    """
    runs = _runs(history)
    if len(runs) == 1:
        (records,) = runs.values()
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        ax_loss, ax_val = fig.subplots(1, 2)
        x, y = _series(records, "train_loss")
        if x.size:
            ax_loss.plot(x, y, marker="o" if x.size < 30 else None, markersize=3,
                         color=METRIC_COLOURS["train_loss"], label="train loss")
            if np.all(y > 0) and y.max() / y.min() > 30:
                ax_loss.set_yscale("log")
        else:
            _no_data(ax_loss, "no training loss recorded")
        any_val = False
        for key in ("precision", "recall", "f1", "iou", "auc"):
            x, y = _series(records, key)
            if x.size:
                any_val = True
                ax_val.plot(x, y, marker="o" if x.size < 30 else None, markersize=3,
                            color=METRIC_COLOURS[key], label={"f1": "F1", "iou": "IoU", "auc": "AUC"}.get(key, key))
        val_title = "validation (pixel metrics)"
        if any_val:
            best_x, best_y = _series(records, "f1")
            if best_x.size:
                i = int(np.argmax(best_y))
                ax_val.axvline(best_x[i], color="0.6", linestyle=":", linewidth=1)
                val_title += f": best F1 {best_y[i]:.3f} at epoch {best_x[i]:g}"
            ax_val.set_ylim(-0.02, 1.02)
            ax_val.legend(fontsize=8, loc="best", ncols=2)
        else:
            _no_data(ax_val, "no validation recorded")
        ax_loss.set_title("training loss", fontsize=10)
        ax_val.set_title(val_title, fontsize=10)
        axes = [ax_loss, ax_val]
    else:
        fig = Figure(figsize=(10, 6.4), layout="constrained")
        grid = fig.subplots(2, 2)
        axes = list(grid.ravel())
        panels = [("train_loss", "training loss"), ("f1", "validation F1"),
                  ("precision", "validation precision"), ("recall", "validation recall")]
        for ax, (key, label) in zip(axes, panels):
            drawn = False
            for j, (name, records) in enumerate(runs.items()):
                x, y = _series(records, key)
                if x.size:
                    drawn = True
                    ax.plot(x, y, marker="o" if x.size < 30 else None, markersize=3,
                            color=RUN_COLOURS[j % len(RUN_COLOURS)], label=name)
            ax.set_title(label, fontsize=10)
            if not drawn:
                _no_data(ax)
            elif key != "train_loss":
                ax.set_ylim(-0.02, 1.02)
        handles = [Line2D([], [], color=RUN_COLOURS[j % len(RUN_COLOURS)], label=name)
                   for j, name in enumerate(runs)]
        if handles:
            axes[0].legend(handles=handles, fontsize=8, loc="upper right")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_training_curves(history, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`training_curves_figure` to ``path``; returns the path."""
    return save_figure(training_curves_figure(history, title), path)


# --------------------------------------------------------------------------- precision-recall


def _pr_parts(m: Any) -> tuple[dict, float, tuple[float, float] | None]:
    """(curve dict, AP, operating point (recall, precision)) of a ParticleMetrics or its as_dict()."""
    if isinstance(m, Mapping):
        curve = m.get("pr_curve") or ({k: m[k] for k in ("precision", "recall") if k in m}
                                      if isinstance(m.get("precision"), (list, tuple, np.ndarray)) else {})
        ap = _num(m.get("ap"))
        op = (_num(m.get("recall")), _num(m.get("precision")))
    else:
        curve = getattr(m, "pr_curve", None) or {}
        ap = _num(getattr(m, "ap", None))
        op = (_num(getattr(m, "recall", None)), _num(getattr(m, "precision", None)))
    if not all(math.isfinite(v) for v in op):
        op = None
    return dict(curve), ap, op


def pr_curve_figure(curves: Mapping[str, Any], title: str | None = None) -> Figure:
    """Precision-recall curves of one or more pickers, AP in the legend.

    ``curves``: name -> :class:`~cryopick.metrics.ParticleMetrics` or its ``as_dict(include_curve=True)``.
    The operating point (all picks, or the picks above the evaluation threshold) is a dot.
    """
    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.subplots()
    # iso-F1 contours
    r = np.linspace(0.01, 1, 200)
    for f in (0.2, 0.4, 0.6, 0.8):
        with np.errstate(divide="ignore", invalid="ignore"):
            p = f * r / (2 * r - f)
        ok = (p > 0) & (p <= 1.05)
        ax.plot(r[ok], p[ok], color="0.85", linewidth=0.8, zorder=0)
        ax.text(1.0, min(f / (2 - f), 1.0), f" F1={f:.1f}", fontsize=7, color="0.6", va="center")
    n_drawn = 0
    for j, (name, m) in enumerate(curves.items()):
        colour = RUN_COLOURS[j % len(RUN_COLOURS)]
        curve, ap, op = _pr_parts(m)
        rec = np.asarray(curve.get("recall", []), dtype=float)
        prec = np.asarray(curve.get("precision", []), dtype=float)
        n = min(rec.size, prec.size)
        ap_txt = f"AP {ap:.3f}" if math.isfinite(ap) else "AP n/a"
        if n:
            rec, prec = rec[:n], prec[:n]
            ax.step(np.concatenate([[0.0], rec]), np.concatenate([[prec[0]], prec]), where="pre",
                    color=colour, linewidth=1.6, label=f"{name} ({ap_txt})")
            n_drawn += 1
        else:
            ax.plot([], [], color=colour, label=f"{name} ({ap_txt}, no curve)")
        if op is not None:
            ax.plot([op[0]], [op[1]], "o", color=colour, markersize=6, markeredgecolor="white", zorder=5)
    if not curves:
        _no_data(ax, "no picks")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall", fontsize=9)
    ax.set_ylabel("precision", fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    if curves:
        ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title or "precision-recall (particles)", fontsize=10)
    return fig


def plot_pr_curve(curves: Mapping[str, Any], path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`pr_curve_figure` to ``path``; returns the path."""
    return save_figure(pr_curve_figure(curves, title), path)

# --------------------------------------------------------------------------- self-training


def selftrain_figure(summary: Mapping, title: str | None = None) -> Figure:
    """Per-iteration label coverage (pseudo-positive, reliable-negative, ignored; % of pixels) and
    validation F1 (iteration 0 = the supervised baseline) of a ``training_summary.json``."""
    its = [it for it in (summary.get("iterations") or []) if isinstance(it, Mapping)]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_cov, ax_f1 = fig.subplots(1, 2)
    x = np.array([_num(it.get("iteration", i + 1)) for i, it in enumerate(its)], dtype=float)
    drawn = False
    for key, label, colour in (("pseudo_positive", "pseudo-positive", "#2ca02c"),
                               ("reliable_negative", "reliable-negative", "#1f77b4"),
                               ("ignored", "ignored", "#7f7f7f")):
        y = np.array([_num(it.get(key)) for it in its], dtype=float)
        ok = np.isfinite(y)
        if ok.any():
            drawn = True
            ax_cov.plot(x[ok], y[ok], marker="o", color=colour, label=label)
    if drawn:
        ax_cov.set_ylim(-2, 102)
        ax_cov.legend(fontsize=8, loc="center right")
    else:
        _no_data(ax_cov, "no iterations")
    ax_cov.set_ylabel("% of pixels", fontsize=9)
    ax_cov.set_title("pseudo-label coverage", fontsize=10)

    base = summary.get("baseline") if isinstance(summary.get("baseline"), Mapping) else None
    drawn = False
    for key, label in (("f1", "F1"), ("precision", "precision"), ("recall", "recall")):
        xs, ys = [], []
        if base is not None and math.isfinite(_num(base.get(key))):
            xs.append(0.0)
            ys.append(_num(base.get(key)))
        for xi, it in zip(x, its):
            v = it.get("validation")
            if isinstance(v, Mapping) and math.isfinite(_num(v.get(key))):
                xs.append(xi)
                ys.append(_num(v.get(key)))
        if xs:
            drawn = True
            ax_f1.plot(xs, ys, marker="o", color=METRIC_COLOURS[key], label=label,
                       linewidth=2.0 if key == "f1" else 1.0, alpha=1.0 if key == "f1" else 0.6)
    if drawn:
        ax_f1.set_ylim(-0.02, 1.02)
        ax_f1.legend(fontsize=8, loc="lower right")
    else:
        _no_data(ax_f1, "no validation set")
    ax_f1.set_title("validation (pixel metrics; 0 = supervised baseline)", fontsize=10)
    for ax in (ax_cov, ax_f1):
        ax.set_xlabel("iteration", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_selftrain(summary: Mapping, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`selftrain_figure` to ``path``; returns the path."""
    return save_figure(selftrain_figure(summary, title), path)


# --------------------------------------------------------------------------- pick counts


def pick_counts_figure(per_micrograph: Mapping[str, Any], title: str | None = None) -> Figure:
    """Histogram of the number of picks per micrograph."""
    names = [str(k) for k, v in per_micrograph.items() if math.isfinite(_num(v))]
    counts = np.array([_num(v) for v in per_micrograph.values()], dtype=float)
    counts = counts[np.isfinite(counts)]
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    if 0 < counts.size <= 40:  # few micrographs: one bar each
        ax.bar(np.arange(counts.size), counts, color="#1f77b4")
        ax.axhline(float(np.median(counts)), color="#d62728", linestyle="--", linewidth=1,
                   label=f"median {np.median(counts):g}")
        ax.set_xticks(np.arange(counts.size))
        ax.set_xticklabels(names, rotation=60 if counts.size > 6 else 0, ha="right" if counts.size > 6 else "center",
                           fontsize=7)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_ylabel("picks", fontsize=9)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(labelsize=8)
        ax.set_title(title or "picks per micrograph", fontsize=10)
        return fig
    if counts.size:
        bins = min(40, max(5, int(np.sqrt(counts.size)) * 2))
        ax.hist(counts, bins=bins, color="#1f77b4", edgecolor="white")
        ax.axvline(float(np.median(counts)), color="#d62728", linestyle="--", linewidth=1,
                   label=f"median {np.median(counts):g}")
        ax.legend(fontsize=8)
    else:
        _no_data(ax, "no micrographs")
    ax.set_xlabel("picks per micrograph", fontsize=9)
    ax.set_ylabel("micrographs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.set_title(title or "picks per micrograph", fontsize=10)
    return fig
