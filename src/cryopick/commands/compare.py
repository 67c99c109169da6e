"""Compare variants that differ in one setting: same data split, same seed, all else identical.

Trains one run per value of --vary FIELD=V1,V2[,...] under one shared configuration
(the configs are diffed and refused if they differ in anything else), then writes
OUT/comparison.json, OUT/comparison.md (performance table, best epoch, parameters,
time per epoch, inference time, particle F1/AP, performance over time),
OUT/training_curves.png and one run directory per variant: OUT/<variant>/, or
OUT/<variant>/seed_<s>/ with several --seeds (then also mean ± std).

FIELD: arch, loss, augment, balanced_sampling, base_features, selftrain (off,on:
supervised training vs self-training), or any SECTION.FIELD of the config (data, model,
train, selftrain, pick), e.g. train.lr. Values take the field's type: on/off for switches,
numbers, words; 'auto' for settings with an automatic default.

examples:
  cryopick compare --images mics/ --labels particles.star --radius 40 --out runs/arch \\
      --vary arch=unet,attention-unet --epochs 100 --eval-every 10
  cryopick compare --images mics/ --labels particles.star --out runs/loss \\
      --vary loss=bce,focal,dice,combined --seeds 42,43,44 --epochs 30
  cryopick compare --images mics/ --labels sparse.star --out runs/st --vary selftrain=off,on --iterations 3
"""

from ._common import add_common, add_data_args, add_selftrain_args, add_train_args, config_from_args


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    g = p.add_argument_group("comparison")
    g.add_argument("--vary", required=True, metavar="FIELD=V1,V2",
                   help="the one setting that differs between the variants, and its values "
                        "(e.g. arch=unet,attention-unet)")
    g.add_argument("--seeds", metavar="S1,S2",
                   help="train every variant once per seed (e.g. 42,43,44); default: --seed")
    g.add_argument("--curve-every", type=int, default=10, metavar="N",
                   help="performance-over-time table every N epochs (default 10; every evaluation for shorter runs)")
    add_selftrain_args(p, "self-training (variants that self-train, e.g. --vary selftrain=off,on)")
    p.add_argument("--out", required=True, help="comparison directory")
    add_common(p)


def main(args):
    from ..compare import parse_seeds, parse_vary, run_comparison
    from ..errors import InputError

    from ..config import with_command_defaults
    from ._checks import check_run_config

    cfg = with_command_defaults(config_from_args(args), "compare")
    check_run_config(cfg, selftrain=True)
    variation = parse_vary(args.vary)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if seeds is not None and args.seed is not None:
        raise InputError("give --seed or --seeds, not both")
    result = run_comparison(cfg, variation, args.out, seeds=seeds, curve_every=args.curve_every)
    for name in result["names"]:
        m = result["variants"][name]["metrics"]
        f1 = m.get("best_f1")
        print(f"{name}: best validation F1 {f1 if f1 is not None else float('nan'):.4f} "
              f"(epoch {m.get('best_epoch')}), {m.get('parameters') or 0:,.0f} parameters")
    print(f"done: {args.out}/comparison.md")
