"""Start-up of `cryopick pick` (issue 16): what the picking path imports stays lean."""

import json
import os
import subprocess
import sys

HEAVY = ["scipy.signal", "scipy.stats", "matplotlib", "cryopick.train", "cryopick.metrics"]


def test_the_picking_path_leaves_heavy_modules_unimported():
    code = ("import json, sys; import cryopick.picking as p, cryopick.peaks, cryopick.pickfiles, cryopick.commands.pick; "
            "d = p.process_group('cpu'); "
            f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], d.rank, d.world]))")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_NUM_THREADS": "1"})
    imported, rank, world = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported == [] and (rank, world) == (0, 1)
