"""Simulate micrographs with ground-truth particles (for demos, tests and benchmarks).

Writes OUT/micrographs/*.mrc, OUT/labels.star (the labelled subset, --labelled-fraction),
OUT/labels_true.star (every particle) and OUT/simulation.json.

example:
  cryopick simulate --out sim --n 8 --size 512 --snr 0.05 --labelled-fraction 0.3
"""


def add_args(p):
    p.add_argument("--out", required=True, help="output directory (micrographs, labels.star, masks)")
    p.add_argument("--n", type=int, default=8, help="number of micrographs")
    p.add_argument("--size", type=int, default=512, help="micrograph side in px")
    p.add_argument("--snr", type=float, default=0.05, help="signal-to-noise ratio (default 0.05: hard)")
    p.add_argument("--diameter", type=float, default=32.0, help="particle diameter in px")
    p.add_argument("--n-particles", type=int, default=None, help="particles per micrograph (default: by density)")
    p.add_argument("--labelled-fraction", type=float, default=1.0, help="share of particles written to labels.star")
    p.add_argument("--contaminants", type=int, default=0, help="ice contaminants per micrograph (not particles)")
    p.add_argument("--carbon-edge", action="store_true", help="add a carbon edge")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", help="(unused: simulate takes flags only)")
    p.add_argument("--device", help="(unused: simulation runs on the CPU)")


def main(args):
    from ..io.atomic import ensure_out_dir
    from ..simulate import SimulationConfig, save_simulation, simulate

    cfg = SimulationConfig(n=args.n, size=args.size, snr=args.snr, diameter=args.diameter, n_particles=args.n_particles,
                           labelled_fraction=args.labelled_fraction, contaminants=args.contaminants,
                           carbon_edge=args.carbon_edge, seed=args.seed)
    out = ensure_out_dir(args.out)
    sims = simulate(cfg)
    save_simulation(sims, out, cfg)
    n_true = sum(len(s.coords) for s in sims)
    n_lab = sum(len(s.labelled) for s in sims)
    print(f"simulated {len(sims)} micrographs, {n_true} particles ({n_lab} labelled) -> {out}")

