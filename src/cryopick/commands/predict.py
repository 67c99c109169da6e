"""Probability maps (and binary masks at --threshold) for micrographs.

Maps are at the model's (downsampled) resolution; written as MRC or PNG. An OUT holding
earlier maps needs --overwrite, which replaces the whole output set at once.

example:
  cryopick predict --model runs/unet/best_model.pt --out maps/ mics/*.mrc --format png
"""

from ._checks import check_value
from ._common import add_common
from ._outputs import add_overwrite, output_folder


def add_args(p):
    p.add_argument("mics", nargs="+", metavar="MICS")
    p.add_argument("--model", required=True, action="append", help="checkpoint (repeat for an ensemble)")
    p.add_argument("--out", required=True, help="output directory for the probability maps")
    p.add_argument("--threshold", type=float, default=None, help="also write a binary mask at this probability")
    p.add_argument("--format", choices=["mrc", "png"], default="mrc", help="map file format (default mrc)")
    p.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass (default 1)")
    add_overwrite(p, "earlier maps")
    add_common(p)


def main(args):
    from ..io.outdir import PREDICT_OUTPUTS

    check_value(args.threshold, "--threshold", "probability", hint=" (a probability for the binary mask)")
    check_value(args.batch_size, "--batch-size", "count")
    check_value(args.seed, "--seed", "seed")
    with output_folder(args.out, "predict", args.overwrite, PREDICT_OUTPUTS) as out:
        paths = write_maps(args, out)
    print(f"wrote probability maps of {len(paths)} micrographs to {args.out}")


def write_maps(args, out):
    from tqdm.auto import tqdm

    from ..config import PickConfig
    from ..io import find_micrographs, read_micrograph
    from ..io.micrographs import write_mrc, write_png
    from ..picking import Picker
    from ..preprocess import preprocess
    from ..device import resolve_device

    picker = Picker.from_checkpoints(args.model, PickConfig(batch_size=args.batch_size),
                                     device=resolve_device(args.device or "auto"))
    paths = find_micrographs(args.mics)
    for path in tqdm(paths, desc="predict", disable=None):
        mic = read_micrograph(path)
        prob = picker.probability(preprocess(mic.image, picker.prep.downsample, picker.prep.normalize))
        outputs = [("prob", prob)]
        if args.threshold is not None:
            outputs.append(("mask", (prob >= args.threshold).astype("float32")))
        for kind, arr in outputs:
            if args.format == "mrc":
                write_mrc(out / f"{mic.name}_{kind}.mrc", arr)
            else:
                write_png(out / f"{mic.name}_{kind}.png", arr, vmin=0.0, vmax=1.0)
    return paths
