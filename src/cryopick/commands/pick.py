"""Pick particles: micrographs -> coordinates with scores, in RELION/cryoSPARC/EMAN/Topaz formats.

Several --model checkpoints form an ensemble (their probability maps are averaged).
The threshold defaults to the one calibrated on validation micrographs at training
time. Coordinates are in original-micrograph pixels whatever the downsampling. An OUT
holding earlier picks needs --overwrite, which replaces the whole output set at once.

example:
  cryopick pick --model runs/unet/best_model.pt --out picks/ mics/ --format star --format box --box-size 128
"""

from ._checks import check_pick_config
from ._common import add_common
from ._outputs import add_overwrite, output_folder


def add_args(p):
    p.add_argument("mics", nargs="+", metavar="MICS")
    p.add_argument("--model", required=True, action="append", help="checkpoint (repeat for an ensemble)")
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, help="score threshold (default: the checkpoint's calibrated one, else 0.5)")
    p.add_argument("--format", action="append", choices=["star", "cryosparc", "box", "topaz", "csv", "json"],
                   help="output format, repeatable (default star)")
    p.add_argument("--box-size", type=int, help="box size in px for .box output (default: 2x the particle diameter)")
    p.add_argument("--min-distance", type=float, help="minimum distance between picks, original px (default: the radius)")
    p.add_argument("--min-area", type=int, default=0, help="drop blobs smaller than this many px")
    p.add_argument("--downsample", type=float, help="override the checkpoint's downsampling factor")
    p.add_argument("--radius", type=float, help="particle radius in micrograph px (needed with --model general; "
                                                "default: the checkpoint's)")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/rotations (test-time augmentation, 8x slower)")
    p.add_argument("--score", choices=["peak", "mean"], default="peak",
                   help="pick score: the smoothed map at the peak (default) or its mean over the particle's core")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--per-micrograph", action="store_true", help="one STAR/TSV/JSON file per micrograph")
    p.add_argument("--all-candidates", action="store_true", help="write every candidate peak (for PR curves), ignore --threshold")
    p.add_argument("--save-maps", action="store_true", help="also write probability maps (MRC)")
    add_overwrite(p, "earlier picks")
    add_common(p)


def main(args):
    from ..config import PickConfig, RunConfig, save_run_config
    from ..io.outdir import PICK_OUTPUTS, is_rank0
    from ..picking import pick_to_files
    from ..train import resolve_device

    cfg = PickConfig(threshold=args.threshold, min_distance=args.min_distance, min_area=args.min_area,
                     tile_size=args.tile_size, batch_size=args.batch_size, formats=args.format or ["star"],
                     box_size=args.box_size, downsample=args.downsample, radius=args.radius, tta=args.tta,
                     score=args.score)
    check_pick_config(cfg, args.seed)
    device = resolve_device(args.device or "auto")
    with output_folder(args.out, "pick", args.overwrite, PICK_OUTPUTS) as out:
        summary = pick_to_files(args.mics, args.model, cfg, out, device=device, per_micrograph=args.per_micrograph,
                                all_candidates=args.all_candidates, save_maps=args.save_maps, final_dir=args.out)
        if is_rank0():
            save_run_config(RunConfig(pick=cfg), out)
    print(f"picked {summary['n_picks']} particles on {summary['n_micrographs']} micrographs "
          f"(threshold {summary['threshold']:.3f}, {summary['seconds_per_micrograph']:.2f} s/micrograph) -> {args.out}")
