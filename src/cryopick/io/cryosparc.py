"""cryoSPARC particles: its RELION STAR import, ``.cs`` files and CSV exports of them.

``location/center_x_frac``/``center_y_frac`` are fractions of the micrograph width /
height in ``location/micrograph_shape`` = ``[H, W]``: ``x = frac_x * W``,
``y = frac_y * H``, no y-flip. STAR files are read as RELION's (:mod:`cryopick.io.star`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cryopick.errors import InputError
from cryopick.io.particles import LabelSet, Particles, group_rows, label_file_stem, read_text
from cryopick.io.star import read_star
from cryopick.io.tables import csv_rows

__all__ = ["read_cryosparc"]


def _shape_pairs(values: Any) -> np.ndarray:
    """``[H, W]`` per row from an (N, 2) array or from strings like ``"[4096 4096]"``."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(np.float64).reshape(-1, 2)
    rows = []
    for v in values:
        if isinstance(v, (str, bytes)):
            text = v.decode() if isinstance(v, bytes) else v
            rows.append([float(t) for t in re.findall(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?", text)][:2])
        else:
            rows.append(list(np.asarray(v, dtype=np.float64).reshape(-1)[:2]))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def _frac_columns(path: Path, fields: Mapping[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """Find cryoSPARC location columns (x_frac, y_frac, H, W, micrograph names) by name ending."""

    def pick(*endings: str) -> Any:
        for name in fields:
            if name.lower().endswith(endings):
                return fields[name]
        return None

    x, y = pick("center_x_frac"), pick("center_y_frac")
    h = pick("micrograph_shape_0", "micrograph_shape/0")
    w = pick("micrograph_shape_1", "micrograph_shape/1")
    shape = pick("micrograph_shape")
    if (h is None or w is None) and shape is not None:
        try:
            pairs = _shape_pairs(shape)
        except ValueError:
            raise InputError(f"{path}: cannot read location/micrograph_shape as [H, W]; re-export the particles") from None
        h, w = pairs[:, 0], pairs[:, 1]
    names = pick("micrograph_path")
    if x is None or y is None or h is None or w is None:
        raise InputError(
            f"{path}: cryoSPARC coordinates need location/center_x_frac, center_y_frac and micrograph_shape "
            f"(found: {', '.join(list(fields)[:12])}); export the particles as a .cs or RELION STAR file"
        )
    return x, y, h, w, names


def _read_cryosparc_table(path: Path, fields: Mapping[str, Any], micrograph_name: str | None) -> LabelSet:
    x, y, h, w, names = _frac_columns(path, fields)
    try:
        xs = np.asarray(x, dtype=np.float64) * np.asarray(w, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64) * np.asarray(h, dtype=np.float64)
        score = None
        for name in fields:
            if name.lower().endswith("ncc_score"):
                score = np.asarray(fields[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: cryoSPARC location or score columns are not numeric; re-export the particles") from None
    xy = np.stack([xs, ys], axis=1).reshape(-1, 2)
    if not np.isfinite(xy).all():
        raise InputError(f"{path}: some cryoSPARC coordinates are NaN; re-export the particles")
    if names is None:
        return {micrograph_name or label_file_stem(path): Particles(xy, score)}
    texts = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
    return group_rows(texts, xy, score)


def read_cryosparc(path: Path, micrograph_name: str | None) -> LabelSet:
    suffix = path.suffix.lower()
    if suffix == ".star":
        return read_star(path, micrograph_name)
    if suffix == ".cs":
        try:
            arr = np.load(path, allow_pickle=False)
            fields = {name: arr[name] for name in (arr.dtype.names or ())}
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable cryoSPARC .cs file ({exc}); re-export the particles") from None
        return _read_cryosparc_table(path, fields, micrograph_name)
    rows = csv_rows(path, read_text(path))
    if not rows:
        return {micrograph_name or label_file_stem(path): Particles.empty()}
    header = [h.strip('"') for h in rows[0][1]]
    columns: dict[str, list[str]] = {h: [] for h in header}
    for n, fields in rows[1:]:
        if len(fields) != len(header):
            raise InputError(
                f"{path} line {n}: expected {len(header)} columns, found {len(fields)}; fix or remove that line"
            )
        for h, v in zip(header, fields):
            columns[h].append(v)
    return _read_cryosparc_table(path, columns, micrograph_name)

