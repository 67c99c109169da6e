"""Turn micrographs + labels into the seeds' zarr layout (images.zarr / masks.zarr).

Micrographs are downsampled and normalised as training would; masks are disks of the
particle radius. All micrographs must share one size after downsampling.

example:
  cryopick prepare --images mics/ --labels particles.star --radius 40 --out prepared/
"""

from ..preprocess import NORMALIZATIONS, NORMALIZE_HELP
from ._checks import check_value
from ._common import add_common, add_label_format


def add_args(p):
    p.add_argument("--images", nargs="+", required=True, metavar="MICS", help="micrograph files, directories or globs")
    p.add_argument("--labels", required=True, metavar="LABELS", help="label file or directory")
    p.add_argument("--out", required=True, help="output directory (preprocessed micrographs and targets)")
    p.add_argument("--radius", type=float, help="particle radius, original px (default: from the labels)")
    p.add_argument("--downsample", type=float, help="downsampling factor (default auto)")
    p.add_argument("--normalize", choices=list(NORMALIZATIONS), default="robust",
                   help=f"micrograph normalisation (default robust): {NORMALIZE_HELP}")
    add_label_format(p)
    add_common(p)


def main(args):
    import dataclasses

    from ..data import load_samples
    from ..io.zarr_store import write_zarr_dataset

    check_value(args.radius, "--radius", "positive")
    check_value(args.downsample, "--downsample", "positive")
    data = load_samples(args.images, args.labels, radius=args.radius, downsample=args.downsample,
                        normalize=args.normalize, label_format=args.label_format)
    samples = [s for s in data.samples if s.mask is not None]
    write_zarr_dataset(args.out, [s.image for s in samples], [s.mask for s in samples], [s.name for s in samples],
                       dataclasses.asdict(data.prep))
    print(f"wrote {len(samples)} micrographs to {args.out} (images.zarr, masks.zarr)")
