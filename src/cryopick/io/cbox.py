"""crYOLO's CBOX files: one STAR file per micrograph, block ``data_cryolo``.

Columns ``_CoordinateX _CoordinateY _Width _Height _EstWidth _EstHeight _Confidence
_NumBoxes _Angle`` (crYOLO 1.8+ adds ``_CoordinateZ``/``_Depth``, read and ignored).
As in EMAN ``.box`` files the coordinates are the box's lower-left corner (the corner
of smallest x and y, no y-flip): the reader adds ``Width/2``, ``Height/2``, the writer
subtracts ``box/2`` without rounding. ``_Confidence`` is the score; particles without
scores get ``<NA>`` there (and read back unscored), as do ``_NumBoxes`` and ``_Angle``
(filament fields). Read and written with the ``starfile`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_path
from cryopick.io.particles import (
    LabelSet,
    Particles,
    WriteOptions,
    content_lines,
    fmt_number,
    label_file_stem,
    read_text,
)
from cryopick.io.star import norm_column, star_numbers

__all__ = ["CBOX_COLUMNS", "read_cbox", "write_cbox"]

CBOX_COLUMNS = ["CoordinateX", "CoordinateY", "Width", "Height", "EstWidth", "EstHeight", "Confidence",
                "NumBoxes", "Angle"]
_MISSING = "<NA>"
_TEXT_COLUMNS = [prefix + c for c in CBOX_COLUMNS for prefix in ("", "_")]


def _cryolo_block(path: Path) -> Any:
    import pandas as pd
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_TEXT_COLUMNS)
    except Exception as exc:  # starfile / pandas raise assorted types on malformed input
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot parse the CBOX file ({msg}); check every row has one value per column") from None
    frames = {name: b for name, b in blocks.items() if isinstance(b, pd.DataFrame)}
    return frames.get("cryolo", next(iter(frames.values()), None))


def read_cbox(path: Path, micrograph_name: str | None = None) -> LabelSet:
    stem = micrograph_name or label_file_stem(path)
    block = _cryolo_block(path) if content_lines(read_text(path)) else None
    if block is None or not len(block):
        return {stem: Particles.empty()}
    cols = {norm_column(c): c for c in block.columns}
    missing = [c for c in ("CoordinateX", "CoordinateY", "Width", "Height") if c.lower() not in cols]
    if missing:
        raise InputError(
            f"{path}: CBOX block without {', '.join('_' + c for c in missing)} (found: "
            f"{', '.join(map(str, block.columns))}); give a crYOLO .cbox file"
        )
    x, y, w, h = (star_numbers(path, block[cols[c]], cols[c], "box coordinates and sizes")
                  for c in ("coordinatex", "coordinatey", "width", "height"))
    xy = np.stack([x + w / 2.0, y + h / 2.0], axis=1)
    scores = None
    if "confidence" in cols:
        raw = [str(v).strip() for v in block[cols["confidence"]].tolist()]
        given = [v not in (_MISSING, "", "nan", "None") for v in raw]
        if any(given):
            if not all(given):
                raise InputError(f"{path}: _Confidence is missing for some boxes; give one for all or none")
            scores = star_numbers(path, block[cols["confidence"]], cols["confidence"], "confidences")
    return {stem: Particles(xy, scores)}


def write_cbox(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    """One micrograph's particles (``labels`` has one entry) in block ``data_cryolo``."""
    import pandas as pd
    import starfile

    (p,) = labels.values()
    size = fmt_number(int(opts.box_size or 0))
    n = len(p)
    corners = p.xy - int(opts.box_size or 0) / 2.0
    scores = [_MISSING] * n if p.scores is None else [fmt_number(v) for v in p.scores]
    # numbers go in pre-formatted so they round-trip exactly (starfile's default is %.6f)
    data = {"CoordinateX": [fmt_number(v) for v in corners[:, 0]], "CoordinateY": [fmt_number(v) for v in corners[:, 1]],
            "Width": [size] * n, "Height": [size] * n, "EstWidth": [size] * n, "EstHeight": [size] * n,
            "Confidence": scores, "NumBoxes": [_MISSING] * n, "Angle": [_MISSING] * n}
    with atomic_path(path) as tmp:
        starfile.write({"cryolo": pd.DataFrame(data, columns=CBOX_COLUMNS)}, tmp)
    return path
