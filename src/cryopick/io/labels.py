"""Particle coordinate files: RELION STAR, cryoSPARC, EMAN box, Topaz, CryoPPP CSV, JSON.

Coordinate convention
---------------------
Inside cryopick a particle position is ``(x, y)`` in pixels of the original
micrograph: ``x`` is the column, ``y`` the row, with the origin at the *centre* of the
top-left pixel; values are floats. Every reader converts into this convention and
every writer converts out of it:

* RELION STAR (``rlnCoordinateX``/``rlnCoordinateY``): particle centres in pixels,
  x = column, y = row, *no* y-flip. ``rlnAutopickFigureOfMerit`` is the score.
* cryoSPARC: "Import Particles" reads RELION STAR, so the ``cryosparc`` writer writes
  the same columns (file ``<name>_cryosparc.star``, block ``data_particles``), no y-flip.
  The reader also takes a cryoSPARC ``.cs`` file or a CSV export of one, with
  ``location/center_x_frac``/``center_y_frac`` (fractions of the micrograph width /
  height in ``location/micrograph_shape`` = ``[H, W]``): ``x = frac_x * W``,
  ``y = frac_y * H``, again no y-flip.
* EMAN ``.box``: one file per micrograph, lines ``x y w h`` with the box's top-left
  corner. The reader adds ``w/2``, ``h/2``; the writer subtracts ``box/2`` and rounds
  to whole pixels (so a round trip is exact to 0.5 px).
* Topaz: one tab-separated file, header ``image_name x_coord y_coord [score]``;
  centres in pixels, ``image_name`` is the micrograph stem.
* CryoPPP CSV: one file per micrograph, header ``X-Coordinate,Y-Coordinate,Diameter``
  (further columns, e.g. ``Score``, are allowed); centres in pixels. Any CSV whose
  header has ``x``/``y`` columns (and optionally ``image_name``/``micrograph``,
  ``score``, ``diameter``) is read the same way.
* JSON (the seeds' format): ``{"image.png": [[x, y], ...]}`` or entries
  ``[x, y, score]``.

Label sets are keyed by micrograph *stem*: the name without directories or micrograph
suffixes (``MotionCorr/x_0.mrc`` → ``x_0``). Files without a name column (box, CryoPPP
CSV, STAR without ``rlnMicrographName``) take the stem of the label file itself.
cryoSPARC names the micrographs it imports with a numeric UID prefix
(``J12/imported/012345678901234567890_x_0.mrc``); when pairing labels with micrographs
(:func:`align_names`, run by :func:`validate_labels`) a name matches a micrograph also
once that prefix (15 or more digits and ``_``) is dropped from either name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_path, atomic_write, atomic_write_text, ensure_out_dir
from cryopick.io.micrographs import micrograph_stem
from cryopick.io.names import align_names, strip_uid

__all__ = [
    "Particles",
    "LabelSet",
    "FORMATS",
    "EXTENSIONS",
    "LABEL_SUFFIXES",
    "guess_format",
    "read_labels",
    "write_labels",
    "validate_labels",
    "deduplicate",
    "strip_uid",
    "align_names",
]

FORMATS = ("star", "cryosparc", "box", "topaz", "csv", "json")
#: File name ending each writer uses (per micrograph: ``<stem><ending>``).
EXTENSIONS: dict[str, str] = {
    "star": ".star",
    "cryosparc": "_cryosparc.star",
    "box": ".box",
    "topaz": ".txt",
    "csv": ".csv",
    "json": ".json",
}
#: Suffixes recognised as label files when reading (also inside a directory).
LABEL_SUFFIXES = (".star", ".cs", ".box", ".json", ".csv", ".tsv", ".txt")
_READ_SUFFIXES: dict[str, tuple[str, ...]] = {
    "star": (".star",),
    "cryosparc": (".star", ".cs", ".csv"),
    "box": (".box", ".txt"),
    "topaz": (".txt", ".tsv", ".csv"),
    "csv": (".csv", ".tsv", ".txt"),
    "json": (".json",),
}
_FORMAT_HELP = "star (.star), cryosparc (.star/.cs), box (.box), topaz (.txt/.tsv), csv (.csv), json (.json)"
# Per-micrograph STAR file names used by RELION / cryopick: "<mic>_autopick.star" etc.
_STAR_FILE_TAILS = ("_cryosparc", "_autopick", "_manualpick")


@dataclass
class Particles:
    """Particles of one micrograph: ``xy`` (N, 2) float64 centres, optional scores and diameter (px)."""

    xy: np.ndarray
    scores: np.ndarray | None = None
    diameter: float | None = None

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if self.scores.shape[0] != self.xy.shape[0]:
                raise ValueError(f"Particles: {self.xy.shape[0]} positions but {self.scores.shape[0]} scores")
        if self.diameter is not None:
            self.diameter = float(self.diameter)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @classmethod
    def empty(cls, diameter: float | None = None) -> Particles:
        """No particles."""
        return cls(np.zeros((0, 2)), None, diameter)


LabelSet = dict[str, Particles]


# ----------------------------------------------------------------------------- helpers


def _fmt(value: float) -> str:
    """Shortest text that reads back as the same float; whole numbers without ``.0``."""
    v = float(value)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _label_file_stem(path: Path) -> str:
    """Micrograph stem a per-micrograph label file stands for."""
    stem = micrograph_stem(path.stem)
    if path.suffix.lower() == ".star":
        for tail in _STAR_FILE_TAILS:
            if stem.endswith(tail) and len(stem) > len(tail):
                return stem[: -len(tail)]
    return stem


def _to_float(path: Path, where: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{path} {where}: {what} '{text}' is not a number; fix or remove that line") from None
    if not math.isfinite(value):
        raise InputError(f"{path} {where}: {what} is '{text}'; coordinates must be finite numbers")
    return value


def _group(
    names: list[str], xy: np.ndarray, scores: np.ndarray | None, diameter: float | None = None
) -> LabelSet:
    """Split rows into a LabelSet by micrograph stem, keeping file order."""
    out: LabelSet = {}
    stems = [micrograph_stem(n) for n in names]
    index: dict[str, list[int]] = {}
    for i, s in enumerate(stems):
        index.setdefault(s, []).append(i)
    for s, rows in index.items():
        sel = np.asarray(rows, dtype=np.int64)
        out[s] = Particles(xy[sel], None if scores is None else scores[sel], diameter)
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: is not a text file; give a label file ({_FORMAT_HELP})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from None


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of lines that are neither blank nor ``#`` comments."""
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


# ----------------------------------------------------------------------------- format guessing


def _header_kind(first: str) -> str | None:
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


def guess_format(path: str | os.PathLike[str]) -> str:
    """Guess a label file's format from its name and, for CSV/TSV/TXT, its header line."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".star":
        return "cryosparc" if p.name.lower().endswith(EXTENSIONS["cryosparc"]) else "star"
    if suffix == ".cs":
        return "cryosparc"
    if suffix == ".box":
        return "box"
    if suffix == ".json":
        return "json"
    if suffix in (".csv", ".tsv", ".txt"):
        lines = _content_lines(_read_text(p)) if p.is_file() else []
        if not lines:
            return "csv" if suffix == ".csv" else "topaz"
        kind = _header_kind(lines[0][1])
        if kind is not None:
            return kind
        raise InputError(
            f"{p}: cannot tell the label format from its first line '{lines[0][1][:60]}'; "
            f"known formats: {_FORMAT_HELP} (pass the format explicitly)"
        )
    raise InputError(f"{p}: unknown label file type '{p.suffix}'; known formats: {_FORMAT_HELP}")


# ----------------------------------------------------------------------------- readers


def _norm_column(name: str) -> str:
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


def _star_numbers(path: Path, raw: Any, column: str, what: str) -> np.ndarray:
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
    for n, line in _content_lines(text):
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


def _read_star(path: Path, micrograph_name: str | None) -> LabelSet:
    import pandas as pd
    import starfile

    text = _read_text(path)
    if not _content_lines(text):
        return {micrograph_name or _label_file_stem(path): Particles.empty()}
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
        cols = {_norm_column(c): c for c in block.columns}
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
        xy[:, j] = _star_numbers(path, block[cols[key]], cols[key], "coordinates")
    scores = None
    if "autopickfigureofmerit" in cols:
        key = cols["autopickfigureofmerit"]
        scores = _star_numbers(path, block[key], key, "scores")
    if "micrographname" in cols and n:
        names = [str(v) for v in block[cols["micrographname"]].tolist()]
        return _group(names, xy, scores)
    return {micrograph_name or _label_file_stem(path): Particles(xy, scores)}


def _read_box(path: Path, micrograph_name: str | None) -> LabelSet:
    rows: list[tuple[float, float]] = []
    for n, line in _content_lines(_read_text(path)):
        fields = line.split()
        if len(fields) < 4:
            raise InputError(
                f"{path} line {n}: expected 4 columns 'x y width height', found {len(fields)}; fix or remove that line"
            )
        x, y, w, h = (_to_float(path, f"line {n}", f, "value") for f in fields[:4])
        rows.append((x + w / 2.0, y + h / 2.0))
    return {micrograph_name or _label_file_stem(path): Particles(np.array(rows).reshape(-1, 2))}


def _split_topaz(line: str, ncols: int) -> list[str]:
    tabbed = [f.strip() for f in line.split("\t") if f.strip()]
    return tabbed if len(tabbed) == ncols else line.split()


def _read_topaz(path: Path) -> LabelSet:
    lines = _content_lines(_read_text(path))
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
        xy.append((_to_float(path, f"line {n}", fields[ix], "x_coord"), _to_float(path, f"line {n}", fields[iy], "y_coord")))
        if iscore is not None:
            scores.append(_to_float(path, f"line {n}", fields[iscore], "score"))
    arr = np.array(xy, dtype=np.float64).reshape(-1, 2)
    return _group(names, arr, np.array(scores) if iscore is not None else None)


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


def _csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """Rows of a comma-, tab- or whitespace-separated table, with line numbers; comments/blanks dropped."""
    lines = _content_lines(text)
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


def _read_csv(path: Path, micrograph_name: str | None) -> LabelSet:
    rows = _csv_rows(path, _read_text(path))
    if not rows:
        return {micrograph_name or _label_file_stem(path): Particles.empty()}
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
        xy.append((_to_float(path, where, fields[ix], header[ix]), _to_float(path, where, fields[iy], header[iy])))
        if iname is not None:
            names.append(fields[iname])
        if iscore is not None:
            scores.append(_to_float(path, where, fields[iscore], header[iscore]))
        if idiam is not None and fields[idiam] != "":
            diameters.append(_to_float(path, where, fields[idiam], header[idiam]))
    arr = np.array(xy, dtype=np.float64).reshape(-1, 2)
    sc = np.array(scores) if iscore is not None else None
    diameter = float(np.median(diameters)) if diameters else None
    if iname is not None:
        return _group(names, arr, sc, diameter) if names else {}
    return {micrograph_name or _label_file_stem(path): Particles(arr, sc, diameter)}


def _read_json(path: Path) -> LabelSet:
    try:
        data = json.loads(_read_text(path) or "{}")
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
        return {micrograph_name or _label_file_stem(path): Particles(xy, score)}
    texts = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
    return _group(texts, xy, score)


def _read_cryosparc(path: Path, micrograph_name: str | None) -> LabelSet:
    suffix = path.suffix.lower()
    if suffix == ".star":
        return _read_star(path, micrograph_name)
    if suffix == ".cs":
        try:
            arr = np.load(path, allow_pickle=False)
            fields = {name: arr[name] for name in (arr.dtype.names or ())}
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable cryoSPARC .cs file ({exc}); re-export the particles") from None
        return _read_cryosparc_table(path, fields, micrograph_name)
    rows = _csv_rows(path, _read_text(path))
    if not rows:
        return {micrograph_name or _label_file_stem(path): Particles.empty()}
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


def _read_file(path: Path, fmt: str | None, micrograph_name: str | None) -> LabelSet:
    if fmt is None:
        fmt = guess_format(path)
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown label format '{fmt}'; known formats: {', '.join(FORMATS)}")
    if fmt == "star":
        return _read_star(path, micrograph_name)
    if fmt == "cryosparc":
        return _read_cryosparc(path, micrograph_name)
    if fmt == "box":
        return _read_box(path, micrograph_name)
    if fmt == "topaz":
        return _read_topaz(path)
    if fmt == "csv":
        return _read_csv(path, micrograph_name)
    return _read_json(path)


def read_labels(
    path: str | os.PathLike[str], fmt: str | None = None, micrograph_name: str | None = None
) -> LabelSet:
    """Read particle coordinates from a label file, or from a directory of per-micrograph label files.

    ``fmt`` is one of :data:`FORMATS` (guessed from the file when ``None``).
    ``micrograph_name`` names the micrograph for files without a name column (box,
    CryoPPP CSV, STAR without ``rlnMicrographName``); by default the label file's stem.
    A file with no particles gives an entry with 0 particles (Topaz, JSON and CSVs
    with a name column give an empty dict); the caller decides whether that is an error.
    """
    p = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"{p}: unknown label format '{fmt}'; known formats: {', '.join(FORMATS)}")
    if not p.exists():
        raise InputError(f"{p}: no such label file or directory; check the path")
    if not p.is_dir():
        return _read_file(p, fmt, micrograph_name)
    allowed = _READ_SUFFIXES[fmt] if fmt else LABEL_SUFFIXES
    files = sorted(
        f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in allowed
    )
    if not files:
        raise InputError(f"{p}: no label files ({', '.join(allowed)}) in this directory; check the path")
    merged: LabelSet = {}
    source: dict[str, Path] = {}
    for f in files:
        for stem, particles in _read_file(f, fmt, None).items():
            if stem in merged:
                raise InputError(
                    f"{p}: micrograph '{stem}' is labelled by both {source[stem].name} and {f.name}; "
                    "keep one label file per micrograph"
                )
            merged[stem], source[stem] = particles, f
    return merged


# ----------------------------------------------------------------------------- writers


def _all_scored(labels: LabelSet) -> bool:
    present = [p for p in labels.values() if len(p)]
    return bool(present) and all(p.scores is not None for p in present)


def _star_frame(labels: LabelSet, micrograph_suffix: str, scored: bool) -> Any:
    import pandas as pd

    names: list[str] = []
    xs: list[str] = []
    ys: list[str] = []
    foms: list[str] = []
    for stem, p in labels.items():
        names.extend([stem + micrograph_suffix] * len(p))
        xs.extend(_fmt(v) for v in p.xy[:, 0])
        ys.extend(_fmt(v) for v in p.xy[:, 1])
        if scored and p.scores is not None:
            foms.extend(_fmt(v) for v in p.scores)
    # numbers go in pre-formatted so they round-trip exactly (starfile's default is %.6f)
    data: dict[str, list[str]] = {"rlnMicrographName": names, "rlnCoordinateX": xs, "rlnCoordinateY": ys}
    if scored:
        data["rlnAutopickFigureOfMerit"] = foms
    return pd.DataFrame(data, columns=list(data))


def _write_star(labels: LabelSet, path: Path, micrograph_suffix: str, block: str, note: str | None = None) -> Path:
    import starfile

    frame = _star_frame(labels, micrograph_suffix, _all_scored(labels))
    with atomic_path(path) as tmp:
        starfile.write({block: frame}, tmp)
        if note:  # a comment line first (e.g. what the file holds)
            tmp.write_text(f"# {note}\n" + tmp.read_text())
    return path


def _write_topaz(labels: LabelSet, path: Path) -> Path:
    scored = _all_scored(labels)
    header = ["image_name", "x_coord", "y_coord"] + (["score"] if scored else [])
    lines = ["\t".join(header)]
    for stem, p in labels.items():
        for i in range(len(p)):
            row = [stem, _fmt(p.xy[i, 0]), _fmt(p.xy[i, 1])]
            if scored and p.scores is not None:
                row.append(_fmt(p.scores[i]))
            lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _write_json(labels: LabelSet, path: Path, micrograph_suffix: str) -> Path:
    obj: dict[str, list[list[float]]] = {}
    for stem, p in labels.items():
        rows = p.xy.tolist()
        if p.scores is not None:
            rows = [r + [float(s)] for r, s in zip(rows, p.scores.tolist())]
        obj[stem + micrograph_suffix] = rows
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")
    return path


def _write_csv(p: Particles, path: Path) -> Path:
    scored = p.scores is not None
    lines = ["X-Coordinate,Y-Coordinate,Diameter" + (",Score" if scored else "")]
    diameter = "" if p.diameter is None else _fmt(p.diameter)
    for i in range(len(p)):
        row = [_fmt(p.xy[i, 0]), _fmt(p.xy[i, 1]), diameter]
        if p.scores is not None:
            row.append(_fmt(p.scores[i]))
        lines.append(",".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _write_box(p: Particles, path: Path, box_size: int) -> Path:
    corners = np.rint(p.xy - box_size / 2.0).astype(np.int64)
    lines = [f"{cx}\t{cy}\t{box_size}\t{box_size}" for cx, cy in corners.tolist()]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def write_labels(
    labels: LabelSet,
    path: str | os.PathLike[str],
    fmt: str,
    box_size: int | None = None,
    per_micrograph: bool = False,
    micrograph_suffix: str = ".mrc",
    note: str | None = None,
) -> list[Path]:
    """Write ``labels`` in format ``fmt`` (atomically) and return the paths written.

    ``box`` and ``csv`` are per-micrograph formats: ``path`` is a directory that gets
    ``<stem>.box`` / ``<stem>.csv``. For the others ``path`` is a file, or a directory
    of ``<stem><EXTENSIONS[fmt]>`` files when ``per_micrograph`` is true.
    ``micrograph_suffix`` is appended to stems where the format names micrograph files
    (STAR ``rlnMicrographName``, JSON keys). ``box_size`` (px) is required for ``box``.
    ``note`` becomes a ``#`` comment line at the top of STAR files (the other formats have none).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown label format '{fmt}'; use one of {', '.join(FORMATS)}")
    out = Path(path)
    if fmt == "box":
        if box_size is None or int(round(box_size)) <= 0:
            raise InputError(f"{out}: the box format needs a positive box size in pixels; pass box_size")
        size = int(round(box_size))
        ensure_out_dir(out)
        return [_write_box(p, out / f"{stem}.box", size) for stem, p in labels.items()]
    if fmt == "csv":
        ensure_out_dir(out)
        return [_write_csv(p, out / f"{stem}.csv") for stem, p in labels.items()]

    def write_one(subset: LabelSet, target: Path) -> Path:
        if fmt == "star":
            return _write_star(subset, target, micrograph_suffix, "", note)
        if fmt == "cryosparc":
            return _write_star(subset, target, micrograph_suffix, "particles", note)
        if fmt == "topaz":
            return _write_topaz(subset, target)
        return _write_json(subset, target, micrograph_suffix)

    if not per_micrograph:
        return [write_one(labels, out)]
    ensure_out_dir(out)
    return [write_one({stem: p}, out / f"{stem}{EXTENSIONS[fmt]}") for stem, p in labels.items()]


# ----------------------------------------------------------------------------- validation


def _examples(names: Iterable[str], k: int = 3) -> str:
    items = sorted(names)
    text = ", ".join(items[:k])
    return text + (f", ... ({len(items)} in all)" if len(items) > k else "")


def deduplicate(particles: Particles, tol: float = 0.5) -> Particles:
    """Drop particles closer than ``tol`` px to an earlier kept one (keeps file order)."""
    n = len(particles)
    if n < 2:
        return particles
    from scipy.spatial import cKDTree

    neighbours: dict[int, list[int]] = {}
    for i, j in cKDTree(particles.xy).query_pairs(r=tol):
        a, b = (i, j) if i < j else (j, i)
        neighbours.setdefault(b, []).append(a)
    keep = np.ones(n, dtype=bool)
    for b in sorted(neighbours):
        if any(keep[a] for a in neighbours[b]):
            keep[b] = False
    if keep.all():
        return particles
    scores = None if particles.scores is None else particles.scores[keep]
    return Particles(particles.xy[keep], scores, particles.diameter)


def validate_labels(
    labels: LabelSet, shapes: Mapping[str, tuple[int, int]], source: str | os.PathLike[str]
) -> list[str]:
    """Check labels against micrographs ``shapes`` (stem → ``(H, W)``); return warnings.

    Entries that name a micrograph only without cryoSPARC's UID prefix are first renamed
    to it, in ``labels`` (:func:`align_names`). Raises :class:`InputError` when no label
    name matches a micrograph, or when a particle lies outside its micrograph. Unmatched
    names and duplicate particles (closer than 0.5 px; see :func:`deduplicate`) are
    reported as warnings.
    """
    src = os.fspath(source)
    align_names(labels, shapes, src)
    warnings: list[str] = []
    matched = [s for s in labels if s in shapes]
    if not matched:
        raise InputError(
            f"{src}: none of the {len(labels)} labelled micrograph names match the {len(shapes)} micrographs "
            f"(labels: {_examples(labels) or 'none'}; micrographs: {_examples(shapes) or 'none'}); "
            "label names must equal the micrograph file names without suffix"
        )
    extra = [s for s in labels if s not in shapes]
    if extra:
        warnings.append(
            f"{src}: {len(extra)} labelled micrographs are not among the inputs and are ignored ({_examples(extra)})"
        )
    unlabelled = [s for s in shapes if s not in labels]
    if unlabelled:
        warnings.append(f"{src}: {len(unlabelled)} micrographs have no labels ({_examples(unlabelled)})")
    for stem in matched:
        p = labels[stem]
        if not len(p):
            continue
        h, w = shapes[stem]
        x, y = p.xy[:, 0], p.xy[:, 1]
        outside = (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            hint = "x and y look swapped" if (
                (p.xy[:, 1] <= w - 0.5).all() and (p.xy[:, 0] <= h - 0.5).all() and (p.xy >= -0.5).all()
            ) else "check the pixel size / downsampling of the labels matches these micrographs"
            raise InputError(
                f"{src}: {int(outside.sum())} of {len(p)} particles of micrograph '{stem}' lie outside its "
                f"{w}x{h} px image (e.g. x={x[i]:.1f}, y={y[i]:.1f}, largest {p.xy.max():.0f}); {hint}"
            )
        kept = deduplicate(p)
        if len(kept) < len(p):
            warnings.append(
                f"{src}: micrograph '{stem}' has {len(p) - len(kept)} duplicate particles (closer than 0.5 px); "
                "check the labels were not merged or exported twice"
            )
    return warnings
