"""The files ``cryopick pick`` writes: which format goes where, boxes at the edge, the candidates note.

Layout of ``--out`` (one entry per ``--format``):

==============  =====================================  ======================================
format          one file (default)                     ``--per-micrograph``
==============  =====================================  ======================================
``star``        ``picks.star``                         ``star/<stem>.star``
``cryosparc``   ``picks_cryosparc.star``               ``cryosparc/<stem>_cryosparc.star``
``topaz``       ``picks.tsv``                          ``topaz/<stem>.txt``
``json``        ``picks.json``                         ``json/<stem>.json``
``box``         ``box/<stem>.box`` (always per micrograph; ``exclude_edge`` drops boxes that
                extend past the micrograph's edge)
``csv``         ``csv/<stem>.csv`` (always per micrograph)
``cbox``        ``cbox/<stem>.cbox`` (crYOLO; always per micrograph)
``relion``      ``relion/<stem>_autopick.star`` and the index ``relion/autopick.star``
                (:mod:`cryopick.io.relion`)
==============  =====================================  ======================================

With ``--all-candidates`` every STAR file starts with a ``#`` line saying it holds every
candidate peak, not the picks (``pick_summary.json`` says so too: ``all_candidates``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import PickConfig
from .io import Particles, write_labels
from .io.formats import FORMATS
from .io.outdir import PICK_OUTPUTS
from .io.relion import update_index, write_autopick_star, write_particles_star
from .io.relion import coordinate_file_name as relion_file_name

__all__ = ["OUTPUT_NAMES", "FOLDER_NAMES", "EXTRA_PICK_OUTPUTS", "CANDIDATES_NOTE", "PickSet", "box_fits",
           "write_pick_outputs", "format_target"]

#: entry of ``--out`` per format (derived from the label-format registry, plus the RELION layout)
OUTPUT_NAMES = {name: f.output_name for name, f in FORMATS.items()} | {"relion": "relion"}
FOLDER_NAMES = {name: name for name in OUTPUT_NAMES}
PER_MICROGRAPH_ONLY = tuple(name for name, f in FORMATS.items() if f.per_micrograph_only) + ("relion",)
LIVE_STATE = "live_state.json"
#: what pick writes beyond ``io.outdir.PICK_OUTPUTS`` (the --per-micrograph folders, the RELION layout, live mode)
EXTRA_PICK_OUTPUTS = [name for name in FOLDER_NAMES if name not in PICK_OUTPUTS] + [LIVE_STATE]
CANDIDATES_NOTE = ("cryopick pick --all-candidates: EVERY candidate peak (score >= {floor:g}), not the picks at "
                   "the threshold; pick again without --all-candidates for the particles")


@dataclass
class PickSet:
    """Picks of some micrographs: stem -> particles, the micrograph path as given, its (H, W).
    ``paths`` may name more micrographs than ``labels`` (live mode: every one done so far)."""

    labels: dict[str, Particles] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)


def format_target(fmt: str, per_micrograph: bool) -> str:
    """The entry of ``--out`` that format ``fmt`` writes (a file, or a folder of per-micrograph files)."""
    return FOLDER_NAMES[fmt] if per_micrograph or fmt in PER_MICROGRAPH_ONLY else OUTPUT_NAMES[fmt]


def box_fits(xy: np.ndarray, shape: tuple[int, int] | None, box: int) -> np.ndarray:
    """Which boxes of side ``box`` (corner rounded as the .box writer does) lie wholly inside a
    micrograph of ``shape`` (H, W); all of them when the shape is unknown."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if shape is None or not len(xy):
        return np.ones(len(xy), dtype=bool)
    h, w = shape
    corner = np.rint(xy - box / 2.0)
    return (corner[:, 0] >= 0) & (corner[:, 1] >= 0) & (corner[:, 0] + box <= w) & (corner[:, 1] + box <= h)


def _inside_edge(picks: PickSet, box: int) -> tuple[dict[str, Particles], int]:
    kept, dropped = {}, 0
    for stem, p in picks.labels.items():
        ok = box_fits(p.xy, picks.shapes.get(stem), box)
        dropped += int((~ok).sum())
        kept[stem] = Particles(p.xy[ok], None if p.scores is None else p.scores[ok], p.diameter)
    return kept, dropped


def write_pick_outputs(picks: PickSet, out: Path, cfg: PickConfig, box: int, per_micrograph: bool = False,
                       all_candidates: bool = False, listed: Path | None = None,
                       index_stems: list[str] | None = None, floor: float = 0.05) -> tuple[list[Path], dict]:
    """Write ``picks`` in every format of ``cfg.formats`` into ``out``; returns (paths, notes).

    ``listed``: how the RELION index names ``out`` (the final ``--out`` when ``out`` is a
    staging folder). ``index_stems``: the micrographs the RELION index lists (default: those
    of ``picks``; live mode passes every micrograph done so far). ``notes`` holds
    ``box_outside_edge`` (boxes dropped, or that would be with ``exclude_edge`` off).
    """
    note = CANDIDATES_NOTE.format(floor=floor) if all_candidates else None
    suffix = _suffix(picks)
    written: list[Path] = []
    notes: dict = {}
    for fmt in cfg.formats:
        target = out / format_target(fmt, per_micrograph)
        if fmt == "relion":
            written += _write_relion(picks, target, (listed or out) / FOLDER_NAMES["relion"], index_stems, note)
        elif fmt == "box":
            kept, outside = _inside_edge(picks, box)
            notes["box_outside_edge"] = outside
            notes["box_exclude_edge"] = bool(cfg.exclude_edge)
            labels = kept if cfg.exclude_edge else picks.labels
            written += write_labels(labels, target, "box", box_size=box) or []
        elif fmt == "star" and cfg.pixel_size is not None and not per_micrograph:
            written.append(write_particles_star(target, picks.labels, picks.paths, cfg.pixel_size, note))
        else:
            written += write_labels(picks.labels, target, fmt, box_size=box, per_micrograph=per_micrograph,
                                    micrograph_suffix=suffix, note=note) or []
    return written, notes


def _write_relion(picks: PickSet, folder: Path, listed: Path, index_stems: list[str] | None,
                  note: str | None) -> list[Path]:
    written = [write_autopick_star(folder / relion_file_name(stem), p.xy, p.scores, note)
               for stem, p in picks.labels.items()]
    stems = index_stems if index_stems is not None else list(picks.labels)
    written.append(update_index(folder, stems, picks.paths, listed, note))
    return written


def _suffix(picks: PickSet) -> str:
    for path in picks.paths.values():
        return Path(path).suffix or ".mrc"
    return ".mrc"
