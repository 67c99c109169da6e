"""Reports: matplotlib figures (:mod:`.figures`) and one self-contained HTML page per run (:mod:`.html`)."""

from .figures import (
    PicksFigure,
    plot_attention_maps,
    plot_picks,
    plot_pr_curve,
    plot_probability_map,
    plot_selftrain,
    plot_training_curves,
)
from .html import build_report, find_runs, render_report, run_kinds, write_report

__all__ = [
    "PicksFigure",
    "build_report",
    "find_runs",
    "plot_attention_maps",
    "plot_picks",
    "plot_pr_curve",
    "plot_probability_map",
    "plot_selftrain",
    "plot_training_curves",
    "render_report",
    "run_kinds",
    "write_report",
]
