"""RELION coordinate STAR files (also cryoSPARC's STAR import), read and written with ``starfile``.

``rlnCoordinateX``/``rlnCoordinateY`` are particle centres in pixels, x = column, y = row,
*no* y-flip; ``rlnAutopickFigureOfMerit`` is the score. Files without ``rlnMicrographName``
take the stem of the label file (``<mic>_autopick.star`` → ``<mic>``).
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_path
from cryopick.io.particles import (
    LabelSet,
    Particles,
    WriteOptions,
    all_scored,
    content_lines,
    fmt_number,
    group_rows,
    label_file_stem,
    read_text,
)

__all__ = ["read_star", "write_star", "write_cryosparc_star", "norm_column", "star_numbers"]


def norm_column(name: str) -> str:
    """'_rlnCoordinateX' / 'rlnCoordinateX' / 'CoordinateX' → 'coordinatex'."""
    n = str(name).strip().lstrip("_")
    if n.lower().startswith("rln"):
        n = n[3:]
    return n.lower()


# Read these columns as text: names stay strings ("001" is not 1) and numbers are parsed
# by Python's float(), which is exact (pandas' fast float parser may be off by an ulp).
_STAR_TEXT_COLUMNS = [
    prefix + base
    for base in ("MicrographName", "CoordinateX", "CoordinateY", "AutopickFigureOfMerit")
    for prefix in ("rln", "", "_rln")
]


def star_numbers(path: Path, raw: Any, column: str, what: str) -> np.ndarray:
    """Column of a STAR loop as float64; InputError naming the first bad data row."""
    values = np.empty(len(raw), dtype=np.float64)
    for i, v in enumerate(raw.tolist()):
        try:
            values[i] = float(v)
        except (TypeError, ValueError):
            values[i] = np.nan
        if not math.isfinite(values[i]):
            raise InputError(
                f"{path}: data row {i + 1}: {column} is '{v}'; {what} must be finite numbers "
                "and every row needs one value per column"
            )
    return values


def _star_row_problem(text: str) -> str | None:
    """The first loop row whose number of values differs from the number of columns, as text."""
    ncols, in_loop = 0, False
    for n, line in content_lines(text):
        lower = line.lower()
        if lower.startswith("data_"):
            ncols, in_loop = 0, False
        elif lower.startswith("loop_"):
            ncols, in_loop = 0, True
        elif line.startswith("_"):
            ncols += 1 if in_loop else 0
        elif in_loop and ncols:
            try:
                found = len(shlex.split(line, comments=False))  # STAR quotes values with spaces
            except ValueError:
                found = len(line.split())
            if found != ncols:
                return f"line {n} has {found} values for {ncols} columns"
    return None


def read_star(path: Path, micrograph_name: str | None) -> LabelSet:
    import pandas as pd
    import starfile

    text = read_text(path)
    if not content_lines(text):
        return {micrograph_name or label_file_stem(path): Particles.empty()}
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_STAR_TEXT_COLUMNS)
    except Exception as exc:  # starfile / pandas raise assorted types on malformed input
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            msg = f"data row {m.group(2)}: expected {m.group(1)} values, found {m.group(3)}"
        msg = _star_row_problem(text) or msg  # pandas counts from the first row, which may be the bad one
        raise InputError(
            f"{path}: cannot parse the STAR file ({msg}); check every row has one value per column"
        ) from None
    seen: list[str] = []
    for block in blocks.values():
        if not isinstance(block, pd.DataFrame):
            seen.extend(str(k) for k in block)
            continue
        seen.extend(str(c) for c in block.columns)
        cols = {norm_column(c): c for c in block.columns}
        if "coordinatex" in cols and "coordinatey" in cols:
            break
    else:
        found = ", ".join(seen[:12]) or "none"
        raise InputError(
            f"{path}: no rlnCoordinateX/rlnCoordinateY columns (found: {found}); give a RELION coordinate STAR file"
        )
    n = len(block)
    xy = np.zeros((n, 2))
    for j, key in enumerate(("coordinatex", "coordinatey")):
        xy[:, j] = star_numbers(path, block[cols[key]], cols[key], "coordinates")
    scores = None
    if "autopickfigureofmerit" in cols:
        key = cols["autopickfigureofmerit"]
        scores = star_numbers(path, block[key], key, "scores")
    if "micrographname" in cols and n:
        names = [str(v) for v in block[cols["micrographname"]].tolist()]
        return group_rows(names, xy, scores)
    return {micrograph_name or label_file_stem(path): Particles(xy, scores)}



def _star_frame(labels: LabelSet, micrograph_suffix: str, scored: bool) -> Any:
    import pandas as pd

    names: list[str] = []
    xs: list[str] = []
    ys: list[str] = []
    foms: list[str] = []
    for stem, p in labels.items():
        names.extend([stem + micrograph_suffix] * len(p))
        xs.extend(fmt_number(v) for v in p.xy[:, 0])
        ys.extend(fmt_number(v) for v in p.xy[:, 1])
        if scored and p.scores is not None:
            foms.extend(fmt_number(v) for v in p.scores)
    # numbers go in pre-formatted so they round-trip exactly (starfile's default is %.6f)
    data: dict[str, list[str]] = {"rlnMicrographName": names, "rlnCoordinateX": xs, "rlnCoordinateY": ys}
    if scored:
        data["rlnAutopickFigureOfMerit"] = foms
    return pd.DataFrame(data, columns=list(data))


def _write_star(labels: LabelSet, path: Path, micrograph_suffix: str, block: str, note: str | None = None) -> Path:
    import starfile

    frame = _star_frame(labels, micrograph_suffix, all_scored(labels))
    with atomic_path(path) as tmp:
        starfile.write({block: frame}, tmp)
        if note:  # a comment line first (e.g. what the file holds)
            tmp.write_text(f"# {note}\n" + tmp.read_text())
    return path



def write_star(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    """RELION STAR: one unnamed block ``data_``."""
    return _write_star(labels, path, opts.micrograph_suffix, "", opts.note)


def write_cryosparc_star(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    """The same columns for cryoSPARC's "Import Particles", in block ``data_particles``."""
    return _write_star(labels, path, opts.micrograph_suffix, "particles", opts.note)
