"""What the figures share: sizes, colours, writing a figure, and drawing helpers."""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cryopick.errors import InputError, OutputError
from cryopick.io.atomic import atomic_path

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
