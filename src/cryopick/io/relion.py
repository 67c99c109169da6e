"""RELION's coordinate layout: one ``<stem>_autopick.star`` per micrograph and an index STAR.

The files are those RELION's AutoPick job writes (RELION 4 and 5; its ``autopicker.cpp``
writes ``_rlnCoordinateX``, ``_rlnCoordinateY``, ``_rlnClassNumber``,
``_rlnAutopickFigureOfMerit``, ``_rlnAnglePsi`` per micrograph, and the job's
``autopick.star`` lists them in a ``data_coordinate_files`` block):

* ``<stem>_autopick.star``: one unnamed block ``data_`` with those five columns;
  centres in micrograph pixels (x = column, y = row, no y-flip), the pick score as the
  figure of merit, class 0 and psi -999 (no reference, no in-plane angle: RELION's
  value for "not set", so extraction sets no psi prior).
* ``autopick.star``: block ``data_coordinate_files`` with ``_rlnMicrographName`` (the
  micrograph path exactly as the user gave it: RELION reads it relative to its project
  folder) and ``_rlnMicrographCoordinates`` (the coordinate file, under ``--out`` as given).

Neither file holds an optics block, as in RELION: from 3.1 on, optics live in the
micrograph and particle STAR files (extraction takes them from the micrographs STAR
that it is given next to ``autopick.star``). :func:`write_particles_star` writes the
one-file layout (every pick with its micrograph, as RELION's particle STAR) with the
``data_optics`` block RELION 3.1+ expects there when the pixel size is known.

Every file is written by the ``starfile`` package into a temporary file that replaces
the target (:func:`cryopick.io.atomic.atomic_path`); a ``# version 30001`` line (the
STAR dialect RELION 3.1+ writes) and an optional ``# ...`` note are added as comments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cryopick.io.atomic import atomic_path

__all__ = ["AUTOPICK_COLUMNS", "INDEX_NAME", "coordinate_file_name", "write_autopick_star", "write_index_star",
           "write_particles_star", "write_relion_layout"]

AUTOPICK_COLUMNS = ["rlnCoordinateX", "rlnCoordinateY", "rlnClassNumber", "rlnAutopickFigureOfMerit", "rlnAnglePsi"]
INDEX_NAME = "autopick.star"
NO_PSI = -999.0  # RELION: no in-plane angle
VERSION_LINE = "# version 30001"


def coordinate_file_name(stem: str) -> str:
    return f"{stem}_autopick.star"


def _write_blocks(blocks: Mapping[str, object], path: Path, note: str | None) -> Path:
    """``starfile.write`` the blocks atomically, with the version comment before each block."""
    import starfile

    with atomic_path(path) as tmp:
        starfile.write(dict(blocks), tmp, float_format="%.6f")
        lines = tmp.read_text().splitlines()
        out = [f"# {note}"] if note else []
        for line in lines:
            if line.startswith("data_"):
                out += [VERSION_LINE, ""]
            out.append(line)
        tmp.write_text("\n".join(out) + "\n")
    return path


def _frame(xy: np.ndarray, scores: np.ndarray | None):
    import pandas as pd

    n = len(xy)
    return pd.DataFrame({
        "rlnCoordinateX": np.asarray(xy[:, 0], dtype=np.float64) if n else np.zeros(0),
        "rlnCoordinateY": np.asarray(xy[:, 1], dtype=np.float64) if n else np.zeros(0),
        "rlnClassNumber": np.zeros(n, dtype=np.int64),
        "rlnAutopickFigureOfMerit": np.asarray(scores if scores is not None else np.ones(n), dtype=np.float64),
        "rlnAnglePsi": np.full(n, NO_PSI),
    }, columns=AUTOPICK_COLUMNS)


def write_autopick_star(path: str | os.PathLike[str], xy: np.ndarray, scores: np.ndarray | None,
                        note: str | None = None) -> Path:
    """One micrograph's ``<stem>_autopick.star``."""
    return _write_blocks({"": _frame(np.asarray(xy).reshape(-1, 2), scores)}, Path(path), note)


def write_index_star(path: str | os.PathLike[str], rows: list[tuple[str, str]], note: str | None = None) -> Path:
    """The ``data_coordinate_files`` index: (micrograph name, coordinate file) per row."""
    import pandas as pd

    frame = pd.DataFrame({"rlnMicrographName": [m for m, _ in rows],
                          "rlnMicrographCoordinates": [c for _, c in rows]},
                         columns=["rlnMicrographName", "rlnMicrographCoordinates"])
    return _write_blocks({"coordinate_files": frame}, Path(path), note)


def write_relion_layout(labels: Mapping[str, object], folder: str | os.PathLike[str],
                        micrograph_names: Mapping[str, str], listed_folder: str | os.PathLike[str] | None = None,
                        note: str | None = None) -> list[Path]:
    """``<stem>_autopick.star`` per micrograph of ``labels`` (stem -> Particles) in ``folder``
    and the index ``autopick.star`` listing them; returns the paths written (index last).

    ``micrograph_names``: stem -> the micrograph path as the user gave it.
    ``listed_folder``: how the index names ``folder`` (default: ``folder``), e.g. the
    final output folder as given on the command line when ``folder`` is a staging one.
    """
    folder = Path(folder)
    written = [write_autopick_star(folder / coordinate_file_name(stem), p.xy, p.scores, note)
               for stem, p in labels.items()]
    written.append(update_index(folder, list(labels), micrograph_names, listed_folder, note))
    return written


def update_index(folder: Path, stems: list[str], micrograph_names: Mapping[str, str],
                 listed_folder: str | os.PathLike[str] | None = None, note: str | None = None) -> Path:
    """(Re)write ``folder/autopick.star`` listing the coordinate files of ``stems``, in that order."""
    listed = Path(listed_folder) if listed_folder is not None else folder
    rows = [(micrograph_names.get(stem, f"{stem}.mrc"), (listed / coordinate_file_name(stem)).as_posix())
            for stem in stems]
    return write_index_star(folder / INDEX_NAME, rows, note)


def write_particles_star(path: str | os.PathLike[str], labels: Mapping[str, object],
                         micrograph_names: Mapping[str, str], pixel_size: float | None,
                         note: str | None = None) -> Path:
    """Every pick in one file with its micrograph (``data_particles``); with ``pixel_size``
    (Å/px) a ``data_optics`` block (one optics group) precedes it, as RELION 3.1+ expects of a
    particle STAR, and each row names its optics group."""
    import pandas as pd

    names, xs, ys, foms = [], [], [], []
    for stem, p in labels.items():
        names += [micrograph_names.get(stem, f"{stem}.mrc")] * len(p)
        xs += p.xy[:, 0].tolist()
        ys += p.xy[:, 1].tolist()
        foms += (p.scores.tolist() if p.scores is not None else [1.0] * len(p))
    particles = pd.DataFrame({"rlnMicrographName": names, "rlnCoordinateX": xs, "rlnCoordinateY": ys,
                              "rlnAutopickFigureOfMerit": foms})
    blocks: dict[str, object] = {}
    if pixel_size is not None:
        blocks["optics"] = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                                         "rlnMicrographPixelSize": [float(pixel_size)]})
        particles["rlnOpticsGroup"] = np.ones(len(particles), dtype=np.int64)
    blocks["particles"] = particles
    return _write_blocks(blocks, Path(path), note)
