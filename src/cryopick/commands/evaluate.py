"""Score picks against ground truth the way the field does: one-to-one (Hungarian) matching
within a radius, precision / recall / F1 / average precision and the PR curve.

Micrographs with truth but no picks count as complete misses (a warning names them) or,
with --only-picked, are left out. The truth may be a folder of mask images (CryoPPP's
PNG masks): give the micrographs with --images so the masks are scaled to them.

examples:
  cryopick evaluate --picks picks/picks.star --truth truth.star --radius 16 --out eval/
  cryopick evaluate --picks picks/picks.star --truth masks/ --images mics/ --radius 20
"""

from ._checks import check_value
from ._common import add_common, add_label_format


def add_args(p):
    p.add_argument("--picks", required=True, metavar="LABELS", help="picks (any label format; scores used when present)")
    p.add_argument("--truth", required=True, metavar="LABELS", help="truth: a label file or folder, or a folder of "
                   "mask images")
    p.add_argument("--images", nargs="+", metavar="MICS", help="the micrographs, for mask-image truth (its disks are "
                   "scaled to the micrographs' size; default: the masks' own pixels)")
    p.add_argument("--radius", type=float, help="match radius in px (default: half the particle diameter from the truth)")
    p.add_argument("--threshold", type=float, help="score threshold for P/R/F1 (default: all picks)")
    p.add_argument("--only-picked", action="store_true", help="score only micrographs with picks (default: the "
                   "others count as complete misses)")
    add_label_format(p, "format of the truth and pick files")
    p.add_argument("--out", help="directory for metrics.json, pr_curve.csv and pr_curve.png")
    add_common(p)


def main(args):
    from ..evaluation import evaluate_files

    check_value(args.radius, "--radius", "positive", hint=" (the match radius in pixels)")
    check_value(args.threshold, "--threshold", "finite")
    overall = evaluate_files(args.picks, args.truth, radius=args.radius, threshold=args.threshold, out_dir=args.out,
                             label_format=args.label_format, images=args.images, only_picked=args.only_picked)
    print(f"precision {overall.precision:.4f}  recall {overall.recall:.4f}  F1 {overall.f1:.4f}  AP {overall.ap:.4f}  "
          f"best F1 {overall.best_f1:.4f} at score {overall.best_threshold}  "
          f"({overall.n_matched}/{overall.n_truth} matched, {overall.n_picks} picks, "
          f"mean error {overall.mean_error:.2f} px)")
