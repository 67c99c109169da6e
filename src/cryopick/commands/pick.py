"""Pick particles: micrographs -> coordinates with scores, in RELION/cryoSPARC/EMAN/Topaz formats.

Several --model checkpoints form an ensemble (their probability maps are averaged).
The picks are those scoring at least the threshold: --threshold, else the one calibrated
on validation micrographs at training time (pick_summary.json says which). Coordinates
are in original-micrograph pixels whatever the downsampling. An OUT holding earlier
picks needs --overwrite, which replaces the whole output set at once.

--format relion writes RELION's AutoPick layout (relion/<stem>_autopick.star and the
index relion/autopick.star, for RELION's Extract job). --watch DIR picks micrographs
as they arrive (live mode, during collection; see the README).

examples:
  cryopick pick --model runs/unet/best_model.pt --out picks/ mics/ --format star --format box --box-size 128
  cryopick pick --model runs/st/final_model.pt --out AutoPick/cryopick/ MotionCorr/job002/Movies/ --format relion
  cryopick pick --model runs/st/final_model.pt --out live/ --watch incoming/ --format relion --idle-timeout 3600
"""

from ._checks import check_pick_config, check_value
from ._common import BOOL, add_common
from ._outputs import add_overwrite, output_folder
from ..config import PICK_SCORES
from ..pickfiles import OUTPUT_NAMES

FORMATS = list(OUTPUT_NAMES)  # the label formats and relion


def add_args(p):
    p.add_argument("mics", nargs="*", metavar="MICS", help="micrograph files, folders or globs (not with --watch)")
    p.add_argument("--model", required=True, action="append", help="checkpoint (repeat for an ensemble)")
    p.add_argument("--out", required=True, help="output directory for the coordinate files")
    p.add_argument("--threshold", type=float, help="score threshold (default: the checkpoint's calibrated one, else 0.5)")
    p.add_argument("--format", action="append", choices=FORMATS,
                   help="output format, repeatable (default star); relion: <stem>_autopick.star + autopick.star")
    p.add_argument("--box-size", type=int, help="box size in px for .box output (default: 2x the particle diameter)")
    p.add_argument("--exclude-edge", action=BOOL, default=True,
                   help=".box output: drop boxes that extend past the micrograph's edge (default on)")
    p.add_argument("--angpix", type=float, metavar="A", help="pixel size in Å: picks.star gets the data_optics block "
                                                             "of RELION 3.1+ particle files")
    p.add_argument("--min-distance", type=float, help="minimum distance between picks, original px (default: half the radius)")
    p.add_argument("--edge-margin", type=float, default=1.0, metavar="RADII",
                   help="drop picks whose centre is closer than this many particle radii to the micrograph's edge: "
                        "a particle cut by the edge cannot be extracted (default 1; 0 keeps them)")
    p.add_argument("--min-area", type=int, default=0, help="drop blobs smaller than this many px")
    p.add_argument("--downsample", type=float, help="override the checkpoint's downsampling factor")
    p.add_argument("--radius", type=float, help="particle radius in micrograph px (needed with --model general; "
                                                "default: the checkpoint's)")
    p.add_argument("--smooth", type=float, default=0.15,
                   help="smoothing of the map before peak finding, sigma as a fraction of the radius (default 0.15)")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/rotations (test-time augmentation, 8x slower)")
    p.add_argument("--score", choices=PICK_SCORES, default="peak",
                   help="pick score: the smoothed map at the peak (default) or its mean over the particle's core")
    p.add_argument("--tile-size", type=int, default=1024, help="network tile side, px after downsampling (default 1024)")
    p.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass (default 1)")
    p.add_argument("--per-micrograph", action="store_true",
                   help="one STAR/TSV/JSON file per micrograph, in OUT/star/, OUT/cryosparc/, OUT/topaz/, OUT/json/")
    p.add_argument("--all-candidates", action="store_true",
                   help="write every candidate peak (for PR curves), ignore --threshold; the files say so")
    p.add_argument("--save-maps", action="store_true", help="also write probability maps (MRC)")
    p.add_argument("--verbose", action="store_true",
                   help="also print the seconds per micrograph of each stage (read, preprocess, network, peaks, write)")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="S",
                   help="without a terminal: a progress line at most every S seconds (default 30)")
    g = p.add_argument_group("live mode")
    g.add_argument("--watch", metavar="DIR", help="pick each new micrograph in DIR once it is complete")
    g.add_argument("--poll", type=float, default=5.0, metavar="S", help="list DIR every S seconds (default 5)")
    g.add_argument("--idle-timeout", type=float, metavar="S", help="stop after S seconds without a new micrograph "
                                                                   "(default: run until Ctrl-C)")
    g.add_argument("--done-suffix", metavar="SUFFIX", help="a micrograph is complete once FILE+SUFFIX exists (e.g. "
                                                           ".done); default: once its size is stable over two polls")
    add_overwrite(p, "earlier picks")
    add_common(p)


def _config(args):
    from ..config import PickConfig

    cfg = PickConfig(threshold=args.threshold, min_distance=args.min_distance, min_area=args.min_area,
                     tile_size=args.tile_size, batch_size=args.batch_size, formats=args.format or ["star"],
                     box_size=args.box_size, downsample=args.downsample, radius=args.radius, tta=args.tta,
                     smooth=args.smooth, edge_margin=args.edge_margin,
                     score=args.score, exclude_edge=args.exclude_edge, pixel_size=args.angpix,
                     progress_seconds=args.progress_every, poll_seconds=args.poll, idle_timeout=args.idle_timeout)
    check_pick_config(cfg, args.seed)
    check_value(cfg.pixel_size, "--angpix", "positive", hint=" (Å per pixel)")
    check_value(cfg.progress_seconds, "--progress-every", "positive")
    check_value(cfg.poll_seconds, "--poll", "positive")
    check_value(cfg.idle_timeout, "--idle-timeout", "positive")
    return cfg


def main(args):
    from ..config import RunConfig, save_run_config
    from ..errors import InputError
    from ..io.outdir import PICK_OUTPUTS, is_rank0
    from ..pickfiles import EXTRA_PICK_OUTPUTS
    from ..picking import pick_to_files
    from ..pretrained import GENERAL
    from ..device import resolve_device

    cfg = _config(args)
    device = resolve_device(args.device or "auto")
    if args.watch:
        if args.mics:
            raise InputError(f"--watch {args.watch} picks the micrographs that arrive there; leave out MICS "
                             f"({args.mics[0]}, ...)")
        from ..live import run_live

        run_live(args.watch, args.model, cfg, args.out, device, overwrite=args.overwrite,
                 done_suffix=args.done_suffix, all_candidates=args.all_candidates, config=RunConfig(pick=cfg))
        return 0
    if not args.mics:
        raise InputError("no micrographs given: pass MICS (files, folders or globs), or --watch DIR for live mode")
    with output_folder(args.out, "pick", args.overwrite, PICK_OUTPUTS + EXTRA_PICK_OUTPUTS) as out:
        summary = pick_to_files(args.mics, args.model, cfg, out, device=device, per_micrograph=args.per_micrograph,
                                all_candidates=args.all_candidates, save_maps=args.save_maps, final_dir=args.out)
        if is_rank0():
            save_run_config(RunConfig(pick=cfg), out)
    what = (f"{summary['n_picks']} candidate peaks (--all-candidates: not the picks)" if summary["all_candidates"]
            else f"{summary['n_picks']} particles")
    print(f"picked {what} on {summary['n_micrographs']} micrographs (threshold {summary['threshold']:.3f}, "
          f"{summary['threshold_source']}; {summary['seconds_per_micrograph']:.2f} s/micrograph) -> {args.out}")
    if GENERAL in args.model:
        print("  note: the general model has not seen your data, so take these picks as a first look (on real sets "
              "left out of its training it beat a blob picker on one of three); label a few micrographs and run "
              "`cryopick train` for real picks")
    if getattr(args, "verbose", False) and summary.get("stage_seconds"):
        n = max(1, summary["n_micrographs"])
        print("  seconds per micrograph: " + ", ".join(f"{k} {v / n:.3f}" for k, v in summary["stage_seconds"].items())
              + f" (all stages {summary['seconds_per_micrograph']:.3f})")
    if summary.get("box_outside_edge"):
        n = summary["box_outside_edge"]
        print(f"  .box: {n} boxes extend past the micrograph edge: "
              + ("left out (--no-exclude-edge keeps them)" if cfg.exclude_edge else "kept (--exclude-edge drops them)"))
