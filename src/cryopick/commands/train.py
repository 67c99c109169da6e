"""Train a U-Net or Attention U-Net on micrographs and particle labels.

Writes OUT/best_model.pt (best validation F1; with --ensemble N it carries all N networks,
the extra ones trained in OUT/members/), OUT/model.pt (last; --resume continues from it),
OUT/metrics.json, OUT/config.yaml and OUT/train_summary.json. An OUT holding an earlier run
needs --resume (continue it) or --overwrite (replace it).

example:
  cryopick train --images mics/ --labels particles.star --radius 40 --out runs/unet --epochs 30
"""

from ._checks import check_run_config
from ._common import add_common, add_data_args, add_train_args, config_from_args
from ._outputs import add_overwrite, run_folder


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--ensemble", type=int, metavar="N",
                   help="train N networks (seeds --seed, --seed+1, ...; the extra ones in OUT/members/) and pick "
                        "with their averaged map, N x the training time (default 1)")
    p.add_argument("--out", required=True, help="run directory")
    add_overwrite(p, "an earlier run")
    add_common(p)


def main(args):
    from ..pipeline import train_run

    cfg = config_from_args(args)
    check_run_config(cfg)
    with run_folder(args.out, "train", bool(cfg.train.resume), args.overwrite) as out:
        result, _ = train_run(cfg, out, overwrite=args.overwrite)
    if cfg.train.ensemble > 1:
        print(f"done: an ensemble of {cfg.train.ensemble} networks in {args.out}/best_model.pt")
        return
    if result.best_f1 is None:
        print(f"done: no validation F1 (no labelled validation micrographs); checkpoints in {args.out}")
        return
    print(f"done: best validation F1 {result.best_f1:.4f} (epoch {result.best_epoch}); checkpoints in {args.out}")
