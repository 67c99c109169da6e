"""Fair comparisons: train variants that differ in exactly one setting, then tabulate them.

``run_comparison(base, variation, out_dir)`` trains one run per value of the varied
setting (``Variation``, from ``parse_vary("arch=unet,attention-unet")``) under one shared
:class:`~cryopick.config.RunConfig`:

- every variant's config is built from the same base and the configs are diffed
  (:func:`check_only_differs`): anything but the named field differing is refused;
- the data are loaded once (one preprocessing, one train/validation split) and every
  variant trains on its own copy of the samples (self-training rewrites masks in place);
  only a varied ``data.*`` setting loads the data once per variant;
- every variant uses the same seed (or the same list of seeds, ``--seeds``).

The special field ``selftrain`` (values off/on) compares supervised training
(:func:`~cryopick.pipeline.train_run`) with self-training
(:func:`~cryopick.selftrain.selftrain_run`) under the same config; any ``selftrain.*``
field runs self-training for every variant.

Per run it records the final (last evaluated) and best (highest validation F1) pixel
precision / recall / F1 / IoU / AUC, the best epoch, the parameter count, training seconds
per epoch, inference seconds per validation micrograph (the picker's probability map,
after one warm-up call), and particle-level best F1 / AP of the best and the final
checkpoint on the validation micrographs (:func:`~cryopick.picking.calibrate_threshold`).

Outputs in ``out_dir``: ``comparison.json``, ``comparison.md`` (the seed reports'
tables), ``training_curves.png`` (when the figures module is available) and one normal
run directory per variant (``<variant>/``, or ``<variant>/seed_<s>/`` with several seeds).

Modules: :mod:`.fields` (``--vary`` names and values), :mod:`.fairness` (the config diff),
:mod:`.history` (histories, summaries, aggregation over seeds), :mod:`.run` (training and
measuring the variants), :mod:`.tables` and :mod:`.markdown` (comparison.md).
"""

from __future__ import annotations

from .fairness import check_only_differs, differing_keys, variant_configs
from .fields import (CHOICES, SECTIONS, SELFTRAIN_MODE, UNMEASURED, Variation, parse_seeds, parse_value, parse_vary,
                     resolve_field)
from .history import (PIXEL_METRICS, aggregate_runs, best_record, curve_rows, differences, key_metrics, mean_history,
                      selftrain_history, summarize_history)
from .markdown import render_markdown
from .run import measure_checkpoint, run_comparison, train_and_measure

__all__ = ["CHOICES", "PIXEL_METRICS", "SECTIONS", "SELFTRAIN_MODE", "UNMEASURED", "Variation", "aggregate_runs",
           "best_record", "check_only_differs", "curve_rows", "differences", "differing_keys", "key_metrics",
           "mean_history", "measure_checkpoint", "parse_seeds", "parse_value", "parse_vary", "render_markdown",
           "resolve_field", "run_comparison", "selftrain_history", "summarize_history", "train_and_measure",
           "variant_configs"]
