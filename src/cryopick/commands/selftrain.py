"""Self-train: supervised phase, then iterations of pseudo-labelling all micrographs and retraining.

Micrographs without a label file take part as unlabelled data. Writes
OUT/baseline_model.pt, OUT/model_iteration_K.pt, OUT/final_model.pt,
OUT/training_summary.json and OUT/config.yaml.

example:
  cryopick selftrain --images mics/ --labels sparse.star --radius 16 --out runs/st --iterations 3 --dynamic-thresholds
"""

from ._common import add_common, add_data_args, add_selftrain_args, add_train_args, config_from_args


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    add_selftrain_args(p)
    p.add_argument("--out", required=True)
    add_common(p)


def main(args):
    from ..selftrain import closing_line, selftrain_run

    summary = selftrain_run(config_from_args(args), args.out)
    print(f"done: {closing_line(summary)}; models in {args.out}")
