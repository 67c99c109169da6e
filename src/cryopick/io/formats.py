"""The registry of label formats: each format declared once, with its reader, writer and file names.

Everything else that lists formats (``read_labels``/``write_labels``, :func:`guess_format`,
the ``--label-format`` and ``pick --format`` choices, ``pick``'s output names, the values
``compare --vary data.label_format=...`` accepts) is derived from :data:`FORMATS`.
Adding a format: a module with its reader and writer, and one :class:`LabelFormat` here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryopick.errors import InputError
from cryopick.io import boxfiles, cbox, cryosparc, star, tables
from cryopick.io.particles import LabelSet, WriteOptions, content_lines, read_text

__all__ = ["LabelFormat", "FORMATS", "EXTENSIONS", "LABEL_SUFFIXES", "FORMAT_HELP", "guess_format", "get_format"]

Reader = Callable[[Path, "str | None"], LabelSet]
Writer = Callable[[LabelSet, Path, WriteOptions], Path]


@dataclass(frozen=True)
class LabelFormat:
    """One label format.

    ``claims``: name endings that make a file this format by its name alone (the longest
    match wins, so ``_cryosparc.star`` beats ``.star``); ``.csv``/``.tsv``/``.txt`` files are
    told apart by their first line instead. ``extension``: the ending of the files the
    writer makes (``<stem><extension>`` per micrograph). ``output_name``: the entry
    ``cryopick pick`` writes into ``--out`` (a file, or a folder of per-micrograph files
    when ``per_micrograph_only``).
    """

    name: str
    read: Reader
    write: Writer
    read_suffixes: tuple[str, ...]
    extension: str
    output_name: str
    hint: str
    help: str
    claims: tuple[str, ...] = ()
    per_micrograph_only: bool = False
    needs_box_size: bool = False


FORMATS: dict[str, LabelFormat] = {
    f.name: f
    for f in (
        LabelFormat("star", star.read_star, star.write_star, (".star",), ".star", "picks.star", ".star",
                    "RELION coordinate STAR", claims=(".star",)),
        LabelFormat("cryosparc", cryosparc.read_cryosparc, star.write_cryosparc_star, (".star", ".cs", ".csv"),
                    "_cryosparc.star", "picks_cryosparc.star", ".star/.cs",
                    "cryoSPARC: .cs, its CSV export, or STAR for Import Particles", claims=("_cryosparc.star", ".cs")),
        LabelFormat("box", boxfiles.read_box, boxfiles.write_box, (".box", ".txt"), ".box", "box", ".box",
                    "EMAN .box, one per micrograph (box corners)", claims=(".box",), per_micrograph_only=True,
                    needs_box_size=True),
        LabelFormat("topaz", tables.read_topaz, tables.write_topaz, (".txt", ".tsv", ".csv"), ".txt", "picks.tsv",
                    ".txt/.tsv", "Topaz TSV: image_name x_coord y_coord [score]"),
        LabelFormat("csv", tables.read_csv, tables.write_csv, (".csv", ".tsv", ".txt"), ".csv", "csv", ".csv",
                    "CryoPPP CSV, one per micrograph", per_micrograph_only=True),
        LabelFormat("json", tables.read_json, tables.write_json, (".json",), ".json", "picks.json", ".json",
                    'JSON {"image.png": [[x, y(, score)], ...]}', claims=(".json",)),
        LabelFormat("cbox", cbox.read_cbox, cbox.write_cbox, (".cbox",), ".cbox", "cbox", ".cbox",
                    "crYOLO CBOX, one per micrograph (box corners, confidence)", claims=(".cbox",),
                    per_micrograph_only=True, needs_box_size=True),
    )
}
#: File name ending each writer uses (per micrograph: ``<stem><ending>``).
EXTENSIONS: dict[str, str] = {name: f.extension for name, f in FORMATS.items()}
#: Suffixes recognised as label files when reading (also inside a directory).
LABEL_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(s for f in FORMATS.values() for s in f.read_suffixes))
FORMAT_HELP = ", ".join(f"{name} ({f.hint})" for name, f in FORMATS.items())
_SNIFFED = (".csv", ".tsv", ".txt")  # told apart by their first line


def get_format(fmt: str, where: object = "") -> LabelFormat:
    """The registered format ``fmt``; InputError naming the known ones otherwise."""
    if fmt not in FORMATS:
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}unknown label format '{fmt}'; known formats: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def guess_format(path: str | os.PathLike[str]) -> str:
    """Guess a label file's format from its name and, for CSV/TSV/TXT, its header line."""
    p = Path(path)
    name, suffix = p.name.lower(), p.suffix.lower()
    claims = [(len(c), f.name) for f in FORMATS.values() for c in f.claims if name.endswith(c)]
    if claims:
        return max(claims)[1]
    if suffix in _SNIFFED:
        lines = content_lines(read_text(p)) if p.is_file() else []
        if not lines:
            return "csv" if suffix == ".csv" else "topaz"
        kind = tables.header_kind(lines[0][1])
        if kind is not None:
            return kind
        raise InputError(
            f"{p}: cannot tell the label format from its first line '{lines[0][1][:60]}'; "
            f"known formats: {FORMAT_HELP} (pass the format explicitly)"
        )
    raise InputError(f"{p}: unknown label file type '{p.suffix}'; known formats: {FORMAT_HELP}")
