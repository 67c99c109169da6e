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

Each format family has a module of its own (:mod:`cryopick.io.star`,
:mod:`cryopick.io.cryosparc`, :mod:`cryopick.io.boxfiles`, :mod:`cryopick.io.tables`,
:mod:`cryopick.io.cbox`), registered once in :mod:`cryopick.io.formats`; this module
reads and writes through that registry and validates label sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import ensure_out_dir
from cryopick.io.formats import EXTENSIONS, FORMATS, LABEL_SUFFIXES, LabelFormat, get_format, guess_format
from cryopick.io.names import align_names, strip_uid
from cryopick.io.particles import LabelSet, Particles, WriteOptions

__all__ = [
    "Particles",
    "LabelSet",
    "LabelFormat",
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


def _read_file(path: Path, fmt: str | None, micrograph_name: str | None) -> LabelSet:
    return get_format(fmt or guess_format(path), path).read(path, micrograph_name)


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
    allowed = FORMATS[fmt].read_suffixes if fmt else LABEL_SUFFIXES
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

    Per-micrograph formats (``box``, ``csv``, ``cbox``): ``path`` is a directory that gets
    ``<stem><EXTENSIONS[fmt]>``. For the others ``path`` is a file, or a directory
    of ``<stem><EXTENSIONS[fmt]>`` files when ``per_micrograph`` is true.
    ``micrograph_suffix`` is appended to stems where the format names micrograph files
    (STAR ``rlnMicrographName``, JSON keys). ``box_size`` (px) is required for ``box`` and ``cbox``.
    ``note`` becomes a ``#`` comment line at the top of STAR files (the other formats have none).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown label format '{fmt}'; use one of {', '.join(FORMATS)}")
    spec, out = FORMATS[fmt], Path(path)
    size = None if box_size is None or int(round(box_size)) <= 0 else int(round(box_size))
    if spec.needs_box_size and size is None:
        raise InputError(f"{out}: the {fmt} format needs a positive box size in pixels; pass box_size")
    opts = WriteOptions(size, micrograph_suffix, note)
    if not (per_micrograph or spec.per_micrograph_only):
        return [spec.write(labels, out, opts)]
    ensure_out_dir(out)
    return [spec.write({stem: p}, out / f"{stem}{spec.extension}", opts) for stem, p in labels.items()]


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
