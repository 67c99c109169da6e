"""Run the whole pipeline on simulated micrographs: simulate, train, self-train, pick,
evaluate, compare U-Net with Attention U-Net, and write an HTML report.

Runs on CPU in a few minutes (--quick: seconds, tiny settings, for smoke tests).

example:
  cryopick demo --out demo_out
"""


def add_args(p):
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds), for smoke tests")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    p.add_argument("--config", help="YAML with DemoSettings fields (n_train, size, epochs, ...)")


def main(args):
    import dataclasses

    import yaml

    from ..demo import DemoSettings, run_demo
    from ..errors import InputError

    s = DemoSettings.quick() if args.quick else DemoSettings()
    if args.config:
        try:
            s = dataclasses.replace(s, **(yaml.safe_load(open(args.config)) or {}))
        except (OSError, TypeError, yaml.YAMLError) as e:
            raise InputError(f"{args.config}: not usable demo settings ({e})") from None
    if args.seed is not None:
        s = dataclasses.replace(s, seed=args.seed)
    run_demo(args.out, s, device=args.device)
