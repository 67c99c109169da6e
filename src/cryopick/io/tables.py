"""Text tables of coordinates: Topaz TSV, CryoPPP (and other) CSV, the seeds' JSON.

* Topaz: one tab-separated file, header ``image_name x_coord y_coord [score]``;
  centres in pixels, ``image_name`` is the micrograph stem.
* CryoPPP CSV: one file per micrograph, header ``X-Coordinate,Y-Coordinate,Diameter``
  (further columns, e.g. ``Score``, are allowed); centres in pixels. Any CSV whose
  header has ``x``/``y`` columns (and optionally ``image_name``/``micrograph``,
  ``score``, ``diameter``) is read the same way.
* JSON (the seeds' format): ``{"image.png": [[x, y], ...]}`` or entries ``[x, y, score]``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_write, atomic_write_text
from cryopick.io.micrographs import micrograph_stem
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
    to_float,
)

__all__ = ["header_kind", "csv_rows", "read_topaz", "read_csv", "read_json", "write_topaz", "write_csv",
           "write_json"]


_X_NAMES = ("x-coordinate", "x_coordinate", "x", "x_coord", "xcoord", "center_x", "coordinatex", "rlncoordinatex")
_Y_NAMES = ("y-coordinate", "y_coordinate", "y", "y_coord", "ycoord", "center_y", "coordinatey", "rlncoordinatey")
_NAME_NAMES = ("image_name", "micrograph", "micrograph_name", "image", "micrographname", "rlnmicrographname")
_SCORE_NAMES = ("score", "confidence", "autopickfigureofmerit", "rlnautopickfigureofmerit")
_DIAMETER_NAMES = ("diameter",)


def _find_column(header: list[str], candidates: Iterable[str]) -> int | None:
    for c in candidates:
        if c in header:
            return header.index(c)
    return None


def csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """Rows of a comma-, tab- or whitespace-separated table, with line numbers; comments/blanks dropped."""
    lines = content_lines(text)
    if not lines:
        return []
    first = lines[0][1]
    if "," in first:
        parsed = []
        for n, line in lines:
            row = next(csv.reader(io.StringIO(line)), [])
            parsed.append((n, [f.strip() for f in row]))
        return parsed
    if "\t" in first:
        return [(n, [f.strip() for f in line.split("\t")]) for n, line in lines]
    return [(n, line.split()) for n, line in lines]


def read_csv(path: Path, micrograph_name: str | None) -> LabelSet:
    rows = csv_rows(path, read_text(path))
    if not rows:
        return {micrograph_name or label_file_stem(path): Particles.empty()}
    header = [h.strip().strip('"').lower() for h in rows[0][1]]
    ix, iy = _find_column(header, _X_NAMES), _find_column(header, _Y_NAMES)
    if ix is None or iy is None:
        raise InputError(
            f"{path} line {rows[0][0]}: no x/y coordinate columns in the header (found: {', '.join(header)}); "
            "use the CryoPPP header X-Coordinate,Y-Coordinate,Diameter"
        )
    iname = _find_column(header, _NAME_NAMES)
    iscore = _find_column(header, _SCORE_NAMES)
    idiam = _find_column(header, _DIAMETER_NAMES)
    names: list[str] = []
    xy: list[tuple[float, float]] = []
    scores: list[float] = []
    diameters: list[float] = []
    for n, fields in rows[1:]:
        while len(fields) > len(header) and fields[-1] == "":
            fields = fields[:-1]
        if len(fields) != len(header):
            raise InputError(
                f"{path} line {n}: expected {len(header)} columns ({','.join(header)}), found {len(fields)}; "
                "fix or remove that line"
            )
        where = f"line {n}"
        xy.append((to_float(path, where, fields[ix], header[ix]), to_float(path, where, fields[iy], header[iy])))
        if iname is not None:
            names.append(fields[iname])
        if iscore is not None:
            scores.append(to_float(path, where, fields[iscore], header[iscore]))
        if idiam is not None and fields[idiam] != "":
            diameters.append(to_float(path, where, fields[idiam], header[idiam]))
    arr = np.array(xy, dtype=np.float64).reshape(-1, 2)
    sc = np.array(scores) if iscore is not None else None
    diameter = float(np.median(diameters)) if diameters else None
    if iname is not None:
        return group_rows(names, arr, sc, diameter) if names else {}
    return {micrograph_name or label_file_stem(path): Particles(arr, sc, diameter)}



def header_kind(first: str) -> str | None:
    """The format a CSV/TSV/TXT header line (or first data line) looks like, or None."""
    lower = first.lower()
    fields = [f.strip().strip('"').lower() for f in re.split(r"[,\t ]+", lower) if f.strip()]
    if "x-coordinate" in fields or "x_coordinate" in fields:
        return "csv"
    if "x_coord" in fields and "y_coord" in fields:
        return "topaz"
    if any(f.endswith("center_x_frac") for f in fields):
        return "cryosparc"
    if lower.startswith("data_") or lower.startswith("loop_"):
        return "star"
    if _find_column(fields, _X_NAMES) is not None and _find_column(fields, _Y_NAMES) is not None:
        return "csv"
    try:
        numbers = [float(f) for f in fields]
    except ValueError:
        return None
    return "box" if len(numbers) >= 4 else None



def _split_topaz(line: str, ncols: int) -> list[str]:
    tabbed = [f.strip() for f in line.split("\t") if f.strip()]
    return tabbed if len(tabbed) == ncols else line.split()


def read_topaz(path: Path, micrograph_name: str | None = None) -> LabelSet:
    lines = content_lines(read_text(path))
    if not lines:
        return {}
    header = [h.lower() for h in _split_topaz(lines[0][1], 0)]
    missing = [c for c in ("image_name", "x_coord", "y_coord") if c not in header]
    if missing:
        raise InputError(
            f"{path} line {lines[0][0]}: Topaz header must have image_name, x_coord, y_coord "
            f"(found: {' '.join(header)}); add the header line"
        )
    ix, iy, iname = header.index("x_coord"), header.index("y_coord"), header.index("image_name")
    iscore = header.index("score") if "score" in header else None
    names: list[str] = []
    xy: list[tuple[float, float]] = []
    scores: list[float] = []
    for n, line in lines[1:]:
        fields = _split_topaz(line, len(header))
        if len(fields) != len(header):
            raise InputError(
                f"{path} line {n}: expected {len(header)} columns ({' '.join(header)}), found {len(fields)}; "
                "fix or remove that line"
            )
        names.append(fields[iname])
        xy.append((to_float(path, f"line {n}", fields[ix], "x_coord"), to_float(path, f"line {n}", fields[iy], "y_coord")))
        if iscore is not None:
            scores.append(to_float(path, f"line {n}", fields[iscore], "score"))
    arr = np.array(xy, dtype=np.float64).reshape(-1, 2)
    return group_rows(names, arr, np.array(scores) if iscore is not None else None)



def read_json(path: Path, micrograph_name: str | None = None) -> LabelSet:
    try:
        data = json.loads(read_text(path) or "{}")
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); fix the file") from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: expected a JSON object {{\"image.png\": [[x, y], ...]}}, found {type(data).__name__}; fix the file"
        )
    out: LabelSet = {}
    keys_by_stem: dict[str, str] = {}
    for key, entries in data.items():
        stem = micrograph_stem(key)
        if stem in keys_by_stem:
            raise InputError(
                f"{path}: keys '{keys_by_stem[stem]}' and '{key}' name the same micrograph '{stem}'; merge them"
            )
        keys_by_stem[stem] = key
        if not isinstance(entries, list):
            raise InputError(f"{path}: '{key}' must map to a list of [x, y] or [x, y, score]; fix the file")
        xy = np.zeros((len(entries), 2))
        widths = set()
        scores = np.zeros(len(entries))
        for i, entry in enumerate(entries):
            ok = (
                isinstance(entry, list)
                and len(entry) in (2, 3)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)
            )
            if not ok or not all(math.isfinite(v) for v in entry):
                raise InputError(
                    f"{path}: '{key}' entry {i}: {json.dumps(entry)[:60]} is not [x, y] or [x, y, score] "
                    "with finite numbers; fix the file"
                )
            widths.add(len(entry))
            xy[i] = entry[:2]
            if len(entry) == 3:
                scores[i] = entry[2]
        if len(widths) > 1:
            raise InputError(
                f"{path}: '{key}' mixes [x, y] and [x, y, score] entries; give a score for all or none"
            )
        out[stem] = Particles(xy, scores if widths == {3} else None)
    return out



def write_topaz(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    scored = all_scored(labels)
    header = ["image_name", "x_coord", "y_coord"] + (["score"] if scored else [])
    lines = ["\t".join(header)]
    for stem, p in labels.items():
        for i in range(len(p)):
            row = [stem, fmt_number(p.xy[i, 0]), fmt_number(p.xy[i, 1])]
            if scored and p.scores is not None:
                row.append(fmt_number(p.scores[i]))
            lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_json(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    obj: dict[str, list[list[float]]] = {}
    for stem, p in labels.items():
        rows = p.xy.tolist()
        if p.scores is not None:
            rows = [r + [float(s)] for r, s in zip(rows, p.scores.tolist())]
        obj[stem + opts.micrograph_suffix] = rows
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")
    return path


def write_csv(labels: LabelSet, path: Path, opts: WriteOptions) -> Path:
    """One micrograph's particles (``labels`` has one entry) as CryoPPP CSV."""
    (p,) = labels.values()
    scored = p.scores is not None
    lines = ["X-Coordinate,Y-Coordinate,Diameter" + (",Score" if scored else "")]
    diameter = "" if p.diameter is None else fmt_number(p.diameter)
    for i in range(len(p)):
        row = [fmt_number(p.xy[i, 0]), fmt_number(p.xy[i, 1]), diameter]
        if p.scores is not None:
            row.append(fmt_number(p.scores[i]))
        lines.append(",".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path

