"""Report figures: training curves, PR curves, picks on a micrograph, probability and attention maps.

Every figure is drawn on a :class:`matplotlib.figure.Figure` (Agg rendering, no pyplot global
state, so it is safe in scripts, tests and threads) and written atomically: to a temporary file
beside the target, then renamed over it. Each ``plot_*`` function returns the path written
(:func:`plot_picks` also the true-positive / false-positive / miss counts). The ``*_figure``
functions build the same figures without writing them, for embedding into the HTML report
(:func:`figure_png_bytes`).

Modules: :mod:`.base` (sizes, colours, writing, drawing helpers), :mod:`.curves` (training,
precision-recall, self-training, pick counts) and :mod:`.micrographs` (picks, probability and
attention maps); every name is importable from here.
"""

# the constants and the two helpers (_num, _downsample) are used by the HTML report and the tests
from .base import (
    ATTENTION_MAX,
    DISPLAY_MAX,
    DPI,
    FP_COLOUR,
    METRIC_COLOURS,
    MISS_COLOUR,
    PICK_COLOUR,
    RUN_COLOURS,
    TP_COLOUR,
    _downsample,
    _num,
    figure_png_bytes,
    save_figure,
)
from .curves import (
    pick_counts_figure,
    plot_pr_curve,
    plot_selftrain,
    plot_training_curves,
    pr_curve_figure,
    selftrain_figure,
    training_curves_figure,
)
from .micrographs import (
    PicksFigure,
    attention_maps_figure,
    picks_figure,
    plot_attention_maps,
    plot_picks,
    plot_probability_map,
    probability_map_figure,
)

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
