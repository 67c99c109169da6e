"""Time the simulator and measure how visible particles are at several SNRs.

Usage::

    PYTHONPATH=src python benchmarks/simulate_snr.py [--n 8] [--size 512] [--diameter 32]

For each SNR it prints the wall time per micrograph (one process, default config) and
two visibility figures from :func:`cryopick.simulate.particle_visibility`, averaged over
the micrographs: the contrast-to-noise ratio of particle centres against background after
a Gaussian low-pass (std = diameter/4 = half the radius), and the AUC of that low-passed
value as a particle-vs-background score (0.5 = invisible, 1 = separable by a threshold).
The raw (unfiltered) per-pixel CNR is printed too.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cryopick.simulate import SimulationConfig, particle_visibility, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="micrographs per SNR")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--diameter", type=float, default=32.0)
    ap.add_argument("--snr", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.5])
    ap.add_argument("--contaminants", type=int, default=0)
    ap.add_argument("--carbon-edge", action="store_true")
    args = ap.parse_args()

    # Warm-up (imports, FFT plans).
    simulate(SimulationConfig(n=1, size=args.size, diameter=args.diameter, seed=99))

    print(f"size={args.size} diameter={args.diameter:g} n={args.n} per SNR")
    print(f"{'snr':>6} {'s/micrograph':>13} {'particles':>9} {'CNR raw':>8} {'CNR lp':>7} {'AUC lp':>7}")
    for snr in args.snr:
        cfg = SimulationConfig(
            n=args.n, size=args.size, diameter=args.diameter, snr=snr,
            contaminants=args.contaminants, carbon_edge=args.carbon_edge, seed=0,
        )
        t0 = time.perf_counter()
        sims = simulate(cfg)
        dt = (time.perf_counter() - t0) / cfg.n
        raw = [particle_visibility(s, cfg.diameter, lowpass_sigma=0, highpass_sigma=0) for s in sims]
        lp = [particle_visibility(s, cfg.diameter) for s in sims]
        n_part = np.mean([len(s.coords) for s in sims])
        print(
            f"{snr:>6g} {dt:>13.3f} {n_part:>9.1f} "
            f"{np.nanmean([v['cnr'] for v in raw]):>8.2f} "
            f"{np.nanmean([v['cnr'] for v in lp]):>7.2f} "
            f"{np.nanmean([v['auc'] for v in lp]):>7.3f}"
        )


if __name__ == "__main__":
    main()
