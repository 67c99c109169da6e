"""Particles of a micrograph and the helpers every label reader and writer shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryopick.errors import InputError
from cryopick.io.micrographs import micrograph_stem

__all__ = ["Particles", "LabelSet", "all_scored", "content_lines", "fmt_number", "group_rows",
           "label_file_stem", "read_text", "to_float", "WriteOptions"]

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


def fmt_number(value: float) -> str:
    """Shortest text that reads back as the same float; whole numbers without ``.0``."""
    v = float(value)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def label_file_stem(path: Path) -> str:
    """Micrograph stem a per-micrograph label file stands for."""
    stem = micrograph_stem(path.stem)
    if path.suffix.lower() == ".star":
        for tail in _STAR_FILE_TAILS:
            if stem.endswith(tail) and len(stem) > len(tail):
                return stem[: -len(tail)]
    return stem


def to_float(path: Path, where: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{path} {where}: {what} '{text}' is not a number; fix or remove that line") from None
    if not math.isfinite(value):
        raise InputError(f"{path} {where}: {what} is '{text}'; coordinates must be finite numbers")
    return value


def group_rows(
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


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        from cryopick.io.formats import FORMAT_HELP

        raise InputError(f"{path}: is not a text file; give a label file ({FORMAT_HELP})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from None


def content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of lines that are neither blank nor ``#`` comments."""
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def all_scored(labels: LabelSet) -> bool:
    present = [p for p in labels.values() if len(p)]
    return bool(present) and all(p.scores is not None for p in present)


@dataclass(frozen=True)
class WriteOptions:
    """What a writer may need beyond the labels: box size (px), micrograph suffix, a note line."""

    box_size: int | None = None
    micrograph_suffix: str = ".mrc"
    note: str | None = None
