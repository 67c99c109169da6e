"""Train a U-Net or Attention U-Net on micrographs and particle labels.

Writes OUT/best_model.pt (by default three networks, each at its best validation epoch, the
extra two trained in OUT/members/; --ensemble 1 for one), OUT/model.pt (last; --resume continues from it),
OUT/metrics.json, OUT/config.yaml and OUT/train_summary.json. An OUT holding an earlier run
needs --resume (continue it) or --overwrite (replace it).

example:
  cryopick train --images mics/ --labels particles.star --radius 40 --out runs/unet --epochs 30
"""

from ..runlayout import read_summary
from ._checks import check_run_config
from ._common import add_common, add_data_args, add_train_args, config_from_args
from ._outputs import add_overwrite, run_folder


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--ensemble", type=int, metavar="N",
                   help="train N networks (seeds --seed, --seed+1, ...; the extra ones in OUT/members/) and pick "
                        "with their averaged map, N x the training time (default 3; 1: one network)")
    p.add_argument("--out", required=True, help="run directory")
    add_overwrite(p, "an earlier run")
    add_common(p)


def main(args):
    from ..pipeline import train_run

    cfg = config_from_args(args)  # train_run fills the command defaults (a resumed run keeps its size)
    check_run_config(cfg)
    with run_folder(args.out, "train", bool(cfg.train.resume), args.overwrite) as out:
        result, cfg = train_run(cfg, out, overwrite=args.overwrite)
        summary = read_summary(out, "train")
    n = cfg.train.ensemble
    what = f"an ensemble of {n} networks (their averaged map)" if n > 1 else f"the weights of epoch {result.best_epoch}"
    scores = summary.particles if summary else None
    if not scores:
        print(f"done: no validation F1 (no labelled validation micrographs); {what} in {args.out}/best_model.pt")
        return
    print(f"done: validation particle F1 {scores['f1']:.3f}, AP {scores['ap']:.3f} at the pick threshold "
          f"{summary.pick_threshold:.3f}; {what} in {args.out}/best_model.pt")
