"""One self-contained HTML page per run directory.

:func:`build_report` looks at the files in a run directory and renders a section for every kind of
run it finds there (a directory may hold several), then does the same for the sub-runs one or
two folders down (the demo's sub-runs, self-training's ``supervised/`` and ``iteration_K/``):

==========================  ===================================================================
files                       section
==========================  ===================================================================
``metrics.json`` (a list),  training: configuration, training curves, metrics every N epochs
``config.yaml``,            (best row bold), summary
``train_summary.json``
``training_summary.json``   self-training: per-iteration coverage / validation table, figure,
                            warnings
``pick_summary.json``       picking: totals, picks per micrograph, output files
``metrics.json`` (a dict    evaluation: overall particle metrics, PR curve (from the JSON or
with ``overall``)           ``pr_curve.csv``), per-micrograph table
``comparison.json`` /       comparison: variant table, differences, overlaid training curves,
``comparison.md``           the markdown
``*.png``, ``figures/*.png``  figures, captioned with the file name
==========================  ===================================================================

The page opens with a summary (:mod:`.summary`: what ran, the picks and their threshold, particle
F1 / AP, the model to use and the next command); sub-runs follow in the order of the work.
The page works offline: figures are PNG data URIs (large, noisy ones JPEG), tables are HTML, styles are inline, there is
no script and no external resource. The only links are in-page anchors and relative links to
files of the run that exist. Every section has an ``id`` (listed in the table of contents).

Modules: :mod:`.render` (the page), one per section (:mod:`.training`, :mod:`.selftrain`,
:mod:`.picking`, :mod:`.evaluation`, :mod:`.comparison`, :mod:`.pictures`), :mod:`.runs` (what a
folder holds), :mod:`.page` (the page model and HTML pieces), :mod:`.markdown`, :mod:`.style`.
"""

from .markdown import markdown_to_html
from .page import Section
from .render import build_report, render_report, write_report
from .runs import find_runs, run_kinds

__all__ = ["Section", "build_report", "write_report", "render_report", "find_runs", "run_kinds", "markdown_to_html"]
