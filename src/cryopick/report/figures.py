"""Report figures: training curves, PR curves, picks on a micrograph, probability and attention maps.

Every figure is drawn on a :class:`matplotlib.figure.Figure` (Agg rendering, no pyplot global
state, so it is safe in scripts, tests and threads) and written atomically: to a temporary file
beside the target, then renamed over it. Each ``plot_*`` function returns the path written
(:func:`plot_picks` also the true-positive / false-positive / miss counts). The ``*_figure``
functions build the same figures without writing them, for embedding into the HTML report
(:func:`figure_png_bytes`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cryopick.errors import InputError, OutputError
from cryopick.io.atomic import atomic_path

__all__ = [
    "PicksFigure",
    "figure_png_bytes",
    "save_figure",
    "training_curves_figure",
    "plot_training_curves",
    "pr_curve_figure",
    "plot_pr_curve",
    "picks_figure",
    "plot_picks",
    "probability_map_figure",
    "plot_probability_map",
    "attention_maps_figure",
    "plot_attention_maps",
    "selftrain_figure",
    "plot_selftrain",
    "pick_counts_figure",
]

DISPLAY_MAX = 1024  # largest side of a micrograph as displayed
ATTENTION_MAX = 512  # largest side of the crop the attention maps are computed on
DPI = 100

# colours: metrics keep the same colour in every figure
METRIC_COLOURS = {
    "train_loss": "#444444",
    "precision": "#1f77b4",
    "recall": "#ff7f0e",
    "f1": "#2ca02c",
    "iou": "#9467bd",
    "auc": "#8c564b",
}
TP_COLOUR, FP_COLOUR, MISS_COLOUR, PICK_COLOUR = "#22dd22", "#ff2a2a", "#ffd400", "#00c8ff"
RUN_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#7f7f7f", "#bcbd22"]


# --------------------------------------------------------------------------- saving


def figure_png_bytes(fig: Figure) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` atomically to ``path`` (format from the suffix, PNG when there is none)."""
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
    except ValueError as exc:  # unknown format
        raise OutputError(f"{target}: cannot write the figure ({exc})") from None
    return target


# --------------------------------------------------------------------------- helpers


def _num(v: Any) -> float:
    """A float, NaN for None / non-numbers (JSON null, missing keys)."""
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _series(history: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the records that hold a finite ``key``."""
    xs, ys = [], []
    for i, rec in enumerate(history):
        if not isinstance(rec, Mapping):
            continue
        y = _num(rec.get(key))
        if math.isfinite(y):
            x = _num(rec.get("epoch"))
            xs.append(x if math.isfinite(x) else i + 1)
            ys.append(y)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    a = np.asarray(image, dtype=np.float32)
    a = np.squeeze(a)
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"{name} must be a 2D array, got shape {np.shape(image)}")
    return a


def _downsample(a: np.ndarray, max_side: int = DISPLAY_MAX) -> tuple[np.ndarray, int]:
    """Block-mean downsampling by an integer factor so the largest side is <= ``max_side``.

    Returns the small image and the factor; the small image covers the first
    ``small.shape * factor`` pixels of ``a``.
    """
    f = max(1, math.ceil(max(a.shape) / max_side))
    if f == 1:
        return a, 1
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    if h == 0 or w == 0:  # extremely elongated: plain striding
        return a[::f, ::f], f
    small = a[:h, :w].reshape(h // f, f, w // f, f)
    if np.isnan(small).any():
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
            return np.nanmean(small, axis=(1, 3)), f
    return small.mean(axis=(1, 3)), f


def _stretch(a: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    """Display limits: the ``lo``-``hi`` percentiles of the finite pixels."""
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(finite, [lo, hi]))
    if vmax <= vmin:
        vmin, vmax = float(finite.min()), float(finite.max())
        if vmax <= vmin:
            vmax = vmin + 1.0
    return vmin, vmax


def _show_micrograph(ax, image: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    """Draw ``image`` contrast-stretched, downsampled for display, in original pixel coordinates.

    ``shape``: the (H, W) whose pixel coordinates the axes use (default the image's own).
    """
    small, f = _downsample(image)
    vmin, vmax = _stretch(small)
    h, w = image.shape if shape is None else shape
    sy, sx = h / image.shape[0], w / image.shape[1]
    covered_h, covered_w = small.shape[0] * f * sy, small.shape[1] * f * sx
    ax.imshow(small, cmap="gray", vmin=vmin, vmax=vmax, interpolation="antialiased",
              extent=(-0.5, covered_w - 0.5, covered_h - 0.5, -0.5))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _circles(ax, xy: np.ndarray, radius: float, colour, linewidth: float = 1.2) -> None:
    if len(xy) == 0:
        return
    d = np.full(len(xy), 2.0 * radius)
    ax.add_collection(EllipseCollection(d, d, np.zeros(len(xy)), units="xy", offsets=xy,
                                        offset_transform=ax.transData, facecolors="none",
                                        edgecolors=colour, linewidths=linewidth))


def _legend_handle(colour, label: str) -> Line2D:
    return Line2D([], [], linestyle="none", marker="o", markersize=9, markerfacecolor="none",
                  markeredgecolor=colour, markeredgewidth=1.6, label=label)


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


# --------------------------------------------------------------------------- picks


class PicksFigure(NamedTuple):
    """What :func:`plot_picks` drew: the file, the counts (``tp``, ``fp``, ``fn``, ``picks``,
    ``truth``) and the legend labels."""

    path: Path | None
    counts: dict
    legend: list


def _xy(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a if a is not None else np.zeros((0, 2)), dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 2))
    if a.ndim != 2 or a.shape[1] < 2:
        raise InputError(f"{name} must have shape (N, 2) [x, y], got {a.shape}")
    return a[:, :2]


def picks_figure(image, picks_xy, truth_xy=None, radius: float | None = None, scores=None,
                 match_radius: float | None = None, title: str | None = None) -> tuple[Figure, dict, list]:
    """Build the picks figure; returns ``(figure, counts, legend labels)`` (see :func:`plot_picks`)."""
    from cryopick.metrics import match_particles

    img = _as_image(image)
    picks = _xy(picks_xy, "picks_xy")
    if radius is None or not math.isfinite(_num(radius)) or _num(radius) <= 0:
        raise InputError(f"plot_picks needs a particle radius > 0 in pixels, got {radius!r}")
    radius = float(radius)
    h, w = img.shape
    aspect = w / h
    fig_w = 7.0 if aspect >= 1 else max(3.5, 7.0 * aspect)
    fig = Figure(figsize=(fig_w, min(7.0, fig_w / aspect) + 0.8), layout="constrained")
    ax = fig.subplots()
    _show_micrograph(ax, img)
    lw = 1.0 if max(h, w) / radius > 60 else 1.5
    counts: dict = {"picks": int(len(picks))}
    handles = []
    if truth_xy is not None:
        truth = _xy(truth_xy, "truth_xy")
        p_idx, t_idx, _ = match_particles(picks, truth, radius if match_radius is None else match_radius)
        is_tp = np.zeros(len(picks), bool)
        is_tp[p_idx] = True
        found = np.zeros(len(truth), bool)
        found[t_idx] = True
        counts.update(truth=int(len(truth)), tp=int(is_tp.sum()), fp=int((~is_tp).sum()), fn=int((~found).sum()))
        _circles(ax, truth[~found], radius, MISS_COLOUR, lw)
        _circles(ax, picks[~is_tp], radius, FP_COLOUR, lw)
        _circles(ax, picks[is_tp], radius, TP_COLOUR, lw)
        handles = [_legend_handle(TP_COLOUR, f"true positive ({counts['tp']})"),
                   _legend_handle(FP_COLOUR, f"false positive ({counts['fp']})"),
                   _legend_handle(MISS_COLOUR, f"missed ({counts['fn']})")]
        if title is None:
            p = counts["tp"] / counts["picks"] if counts["picks"] else 0.0
            r = counts["tp"] / counts["truth"] if counts["truth"] else 0.0
            title = f"{counts['picks']} picks, {counts['truth']} true particles: precision {p:.3f}, recall {r:.3f}"
    else:
        if scores is not None and len(picks):
            s = np.asarray(scores, dtype=float).reshape(-1)
            if s.size != len(picks):
                raise InputError(f"plot_picks got {len(picks)} picks but {s.size} scores")
            from matplotlib import colormaps
            from matplotlib.colors import Normalize

            norm = Normalize(vmin=float(np.nanmin(s)), vmax=max(float(np.nanmax(s)), float(np.nanmin(s)) + 1e-6))
            cmap = colormaps["plasma"]
            _circles(ax, picks, radius, cmap(norm(s)), lw)
            from matplotlib.cm import ScalarMappable

            fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, label="score")
        else:
            _circles(ax, picks, radius, PICK_COLOUR, lw)
        handles = [_legend_handle(PICK_COLOUR if scores is None else "0.3", f"picks ({len(picks)})")]
        if title is None:
            title = f"{len(picks)} picks"
    # below the image, so it never hides a pick
    legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=len(handles),
                       fontsize=9, frameon=False)
    ax.set_title(title, fontsize=10)
    labels = [t.get_text() for t in legend.get_texts()]
    return fig, counts, labels


def plot_picks(image, picks_xy, truth_xy=None, radius: float | None = None, path: str | os.PathLike[str] | None = None,
               scores=None, match_radius: float | None = None, title: str | None = None) -> PicksFigure:
    """Draw picks as circles of ``radius`` px on the micrograph (1-99 percentile contrast).

    With ``truth_xy``, picks are matched one-to-one to the true particles within ``match_radius``
    (default ``radius``; :func:`cryopick.metrics.match_particles`): true positives green, false
    positives red, missed particles yellow, with counts in the legend. Without truth every pick is
    one colour (coloured by ``scores`` when given). Coordinates are [x, y] pixels of ``image``;
    large images are block-averaged to <= 1024 px for display. Returns
    ``PicksFigure(path, counts, legend)``; counts has ``picks`` and, with truth, ``truth``,
    ``tp``, ``fp``, ``fn``.
    """
    if path is None:
        raise InputError("plot_picks needs an output path")
    fig, counts, labels = picks_figure(image, picks_xy, truth_xy, radius, scores, match_radius, title)
    return PicksFigure(save_figure(fig, path), counts, labels)


# --------------------------------------------------------------------------- probability maps


def probability_map_figure(image, prob, title: str | None = None) -> Figure:
    """Micrograph and probability map side by side (the map stretched over the micrograph's extent)."""
    img = _as_image(image)
    p = _as_image(prob, "prob")
    h, w = img.shape
    aspect = w / h
    fig = Figure(figsize=(11, min(9.0, 4.9 / aspect) + 0.6), layout="constrained")
    ax_img, ax_prob = fig.subplots(1, 2)
    _show_micrograph(ax_img, img)
    small, f = _downsample(p)
    sy, sx = h / p.shape[0], w / p.shape[1]
    im = ax_prob.imshow(small, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="antialiased",
                        extent=(-0.5, small.shape[1] * f * sx - 0.5, small.shape[0] * f * sy - 0.5, -0.5))
    ax_prob.set_xlim(-0.5, w - 0.5)
    ax_prob.set_ylim(h - 0.5, -0.5)
    ax_prob.set_xticks([])
    ax_prob.set_yticks([])
    fig.colorbar(im, ax=ax_prob, shrink=0.8, label="particle probability")
    ax_img.set_title("micrograph", fontsize=10)
    ax_prob.set_title(f"probability map ({p.shape[1]}x{p.shape[0]})", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_probability_map(image, prob, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`probability_map_figure` to ``path``; returns the path."""
    return save_figure(probability_map_figure(image, prob, title), path)


# --------------------------------------------------------------------------- attention maps


def _center_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[top:top + size, left:left + size]


def attention_maps_figure(model, image, title: str | None = None, max_side: int = ATTENTION_MAX) -> Figure:
    """The image (centre crop <= ``max_side`` px) and the four attention levels of an Attention U-Net.

    ``image``: a 2D preprocessed micrograph (as the model sees it). The model runs in eval mode
    on the device its weights are on; its training/eval mode is restored afterwards.
    """
    import torch

    if not hasattr(model, "get_attention_maps"):
        raise InputError(f"attention maps need an Attention U-Net; got {type(model).__name__}")
    crop = np.ascontiguousarray(_center_crop(_as_image(image), max_side))
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            maps = model.get_attention_maps(torch.from_numpy(crop)[None, None].to(device))
    finally:
        model.train(was_training)
    names = sorted(maps)
    fig = Figure(figsize=(3.0 * (len(names) + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, len(names) + 1, squeeze=False)[0]
    h, w = crop.shape
    _show_micrograph(axes[0], crop)
    axes[0].set_title(f"input ({w}x{h})", fontsize=10)
    im = None
    for ax, name in zip(axes[1:], names):
        a = maps[name].detach().float().cpu().numpy()
        a = a[0].mean(axis=0) if a.ndim == 4 else np.squeeze(a)
        im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                       extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name} ({a.shape[1]}x{a.shape[0]})", fontsize=10)
    if im is not None:
        fig.colorbar(im, ax=list(axes[1:]), shrink=0.8, label="attention")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_attention_maps(model, image, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`attention_maps_figure` to ``path``; returns the path."""
    return save_figure(attention_maps_figure(model, image, title), path)


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
