"""Score picks against ground truth the way the field does: one-to-one (Hungarian) matching
within a radius, precision / recall / F1 / average precision and the PR curve.

example:
  cryopick evaluate --picks picks/picks.star --truth truth.star --radius 16 --out eval/
"""

from ._common import add_common


def add_args(p):
    p.add_argument("--picks", required=True, metavar="LABELS", help="picks (any label format; scores used when present)")
    p.add_argument("--truth", required=True, metavar="LABELS")
    p.add_argument("--radius", type=float, help="match radius in px (default: half the particle diameter from the truth)")
    p.add_argument("--threshold", type=float, help="score threshold for P/R/F1 (default: all picks)")
    p.add_argument("--label-format")
    p.add_argument("--out", help="directory for metrics.json, pr_curve.csv and pr_curve.png")
    add_common(p)


def main(args):
    from ..evaluation import evaluate_files

    overall = evaluate_files(args.picks, args.truth, radius=args.radius, threshold=args.threshold, out_dir=args.out,
                             label_format=args.label_format)
    print(f"precision {overall.precision:.4f}  recall {overall.recall:.4f}  F1 {overall.f1:.4f}  AP {overall.ap:.4f}  "
          f"best F1 {overall.best_f1:.4f} at score {overall.best_threshold}  "
          f"({overall.n_matched}/{overall.n_truth} matched, {overall.n_picks} picks, "
          f"mean error {overall.mean_error:.2f} px)")
