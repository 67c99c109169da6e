"""Write one self-contained HTML report (figures embedded, readable offline) for a run directory.

Renders a section for every run found in RUN_DIR and in its sub-folders: training
(config.yaml, metrics.json, train_summary.json), self-training (training_summary.json),
picking (pick_summary.json), evaluation (metrics.json from 'cryopick evaluate'),
comparison (comparison.json / comparison.md) and any *.png in RUN_DIR or RUN_DIR/figures.

example:
  cryopick report runs/unet                      # writes runs/unet/report.html
  cryopick report runs/demo --out demo_report.html
"""


def add_args(p):
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (output folder of train, selftrain, pick, "
                                                      "evaluate, compare or demo)")
    p.add_argument("--out", metavar="FILE.html", help="output file (default RUN_DIR/report.html)")


def main(args):
    from pathlib import Path

    from ..io.atomic import atomic_write_text
    from ..report.html import render_report

    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    page, sections = render_report(args.run_dir, out)
    atomic_write_text(out, page)
    titles = ", ".join(s.title for s in sections)
    print(f"wrote {out} ({len(page) / 1e6:.1f} MB; sections: {titles})")
