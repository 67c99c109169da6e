"""Self-train: supervised phase, then iterations of pseudo-labelling all micrographs and retraining.

Micrographs without a label file take part as unlabelled data. Writes
OUT/baseline_model.pt, OUT/model_iteration_K.pt, OUT/final_model.pt,
OUT/training_summary.json and OUT/config.yaml. An OUT holding an earlier run needs
--resume (continue it) or --overwrite (replace it).

example:
  cryopick selftrain --images mics/ --labels sparse.star --radius 16 --out runs/st --iterations 3 --dynamic-thresholds
"""

from ..config import with_command_defaults
from ._checks import check_run_config
from ._common import add_common, add_data_args, add_selftrain_args, add_train_args, config_from_args
from ._outputs import add_overwrite, run_folder


def add_args(p):
    add_data_args(p)
    add_train_args(p)
    add_selftrain_args(p)
    p.add_argument("--out", required=True, help="run directory")
    add_overwrite(p, "an earlier run")
    add_common(p)


def _read_then_clear(cfg, out):
    """--overwrite: read and check every input first, then remove the earlier run (so a bad
    input keeps it); returns the data for selftrain_run."""
    from ..checkpoint import load_checkpoint
    from ..io.outdir import RUN_OUTPUTS, clear_outputs, is_rank0, matcher
    from ..pipeline import load_run_data, resolve
    from ..selftrain import check_selftrain_config

    check_selftrain_config(cfg.selftrain)
    if cfg.selftrain.init:
        load_checkpoint(cfg.selftrain.init, expect_arch=cfg.model.arch)
    data = load_run_data(cfg, print if is_rank0() else (lambda message: None))
    resolve(cfg, data)
    if is_rank0():
        clear_outputs(out, matcher(RUN_OUTPUTS))
    return data


def main(args):
    from ..selftrain import closing_line, selftrain_run

    cfg = with_command_defaults(config_from_args(args), "selftrain")
    check_run_config(cfg, selftrain=True)
    with run_folder(args.out, "selftrain", bool(cfg.train.resume), args.overwrite) as out:
        data = _read_then_clear(cfg, out) if args.overwrite else None
        summary = selftrain_run(cfg, out, data=data)
    print(f"done: {closing_line(summary)}; models in {args.out}")
