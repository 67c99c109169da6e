"""Figures drawn on a micrograph: picks, the probability map, attention maps."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from cryopick.errors import InputError

from .base import (
    ATTENTION_MAX,
    FP_COLOUR,
    MISS_COLOUR,
    PICK_COLOUR,
    TP_COLOUR,
    _as_image,
    _circles,
    _downsample,
    _legend_handle,
    _num,
    _show_micrograph,
    save_figure,
)

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
