"""Writing a simulated data set: MRC micrographs, STAR labels and a JSON summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .config import SimulatedMicrograph, SimulationConfig, _config_dict


def save_simulation(
    sims: list[SimulatedMicrograph], out_dir, cfg: SimulationConfig | None = None
) -> Path:
    """Write a simulated data set under ``out_dir`` and return it as a Path.

    Layout: ``micrographs/<name>.mrc`` (float32, voxel size = pixel size),
    ``labels_true.star`` (every particle), ``labels.star`` (the labelled subset), both
    with columns rlnMicrographName (``<name>.mrc``), rlnCoordinateX, rlnCoordinateY in the
    module's pixel convention, and ``simulation.json`` (the config and a per-micrograph
    summary).  Each file is written to a temporary name and then renamed into place.
    """
    import mrcfile
    import pandas as pd
    import starfile

    out = Path(out_dir)
    (out / "micrographs").mkdir(parents=True, exist_ok=True)

    for s in sims:
        path = out / "micrographs" / f"{s.name}.mrc"
        tmp = path.with_name(f".{path.name}.tmp")
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(s.image, dtype=np.float32))
            mrc.voxel_size = s.pixel_size
        os.replace(tmp, path)

    def write_star(path: Path, which: str) -> None:
        names, xs, ys = [], [], []
        for s in sims:
            c = getattr(s, which)
            names += [f"{s.name}.mrc"] * len(c)
            xs += c[:, 0].tolist()
            ys += c[:, 1].tolist()
        df = pd.DataFrame(
            {
                "rlnMicrographName": pd.Series(names, dtype=object),
                "rlnCoordinateX": pd.Series(xs, dtype=np.float64),
                "rlnCoordinateY": pd.Series(ys, dtype=np.float64),
            }
        )
        tmp = path.with_name(f".{path.name}.tmp")
        starfile.write(df, tmp)
        os.replace(tmp, path)

    write_star(out / "labels_true.star", "coords")
    write_star(out / "labels.star", "labelled")

    if cfg is not None:
        config = _config_dict(cfg)
    else:
        config = sims[0].meta.get("config") if sims else None
    summary = {
        "config": config,
        "coordinates": "pixels, x=column, y=row, 0-based, integers at pixel centres",
        "micrographs": [
            {
                "name": s.name,
                "file": f"micrographs/{s.name}.mrc",
                "shape": list(s.image.shape),
                "n_particles": int(len(s.coords)),
                "n_labelled": int(len(s.labelled)),
                "defocus_um": float(s.defocus_um),
                "defocus_u_um": float(s.meta.get("defocus_u_um", s.defocus_um)),
                "defocus_v_um": float(s.meta.get("defocus_v_um", s.defocus_um)),
                "astig_angle_rad": float(s.meta.get("astig_angle_rad", 0.0)),
                "contaminants": np.asarray(s.contaminants).tolist(),
                "carbon": s.meta.get("carbon"),
            }
            for s in sims
        ],
    }
    path = out / "simulation.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    return out
