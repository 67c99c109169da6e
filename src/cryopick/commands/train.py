"""Train a U-Net or Attention U-Net on micrographs and particle labels.

Writes OUT/best_model.pt (best validation F1), OUT/model.pt (last; --resume continues
from it), OUT/metrics.json, OUT/config.yaml and OUT/train_summary.json.

example:
  cryopick train --images mics/ --labels particles.star --radius 40 --out runs/unet --epochs 30
"""

from ._common import add_common, add_data_args, add_train_args, config_from_args


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", required=True, help="run directory")
    add_common(p)


def main(args):
    from ..pipeline import train_run

    result, _ = train_run(config_from_args(args), args.out)
    print(f"done: best validation F1 {result.best_f1 if result.best_f1 is not None else float('nan'):.4f} "
          f"(epoch {result.best_epoch}); checkpoints in {args.out}")
