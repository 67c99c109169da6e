"""EMAN ``.box`` files: one file per micrograph, lines ``x y w h`` with the box's top-left corner.

The reader adds ``w/2``, ``h/2``; the writer subtracts ``box/2`` and rounds to whole
pixels (so a round trip is exact to 0.5 px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_write_text
from cryopick.io.particles import LabelSet, Particles, WriteOptions, content_lines, label_file_stem, read_text, to_float

__all__ = ["read_box", "write_box"]


def read_box(path: Path, micrograph_name: str | None) -> LabelSet:
    rows: list[tuple[float, float]] = []
    for n, line in content_lines(read_text(path)):
        fields = line.split()
        if len(fields) < 4:
            raise InputError(
                f"{path} line {n}: expected 4 columns 'x y width height', found {len(fields)}; fix or remove that line"
            )
        x, y, w, h = (to_float(path, f"line {n}", f, "value") for f in fields[:4])
        rows.append((x + w / 2.0, y + h / 2.0))
    return {micrograph_name or label_file_stem(path): Particles(np.array(rows).reshape(-1, 2))}



def write_box(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    """One micrograph's particles (``labels`` has one entry); ``opts.box_size`` is checked by the caller."""
    (p,) = labels.values()
    box_size = int(opts.box_size or 0)
    corners = np.rint(p.xy - box_size / 2.0).astype(np.int64)
    lines = [f"{cx}\t{cy}\t{box_size}\t{box_size}" for cx, cy in corners.tolist()]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path

