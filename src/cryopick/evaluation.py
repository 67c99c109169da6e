"""Evaluate label files against each other: picks vs truth, written as JSON, CSV and a PR-curve PNG.

The evaluation says what it scored. Micrographs with truth but no picks count as
complete misses, with a warning naming them, or are left out (``only_picked``); a
micrograph the ``pick_summary.json`` beside the picks lists was picked (it may have 0
picks). Picks on micrographs the truth does not cover are left out, with a warning.
Truth may be a folder of mask images (e.g. CryoPPP's PNG masks): their disks become
particle centres through :func:`cryopick.masks.read_mask_labels`, the function
training uses, scaled to the micrographs given as ``images`` (or, without them, in mask
pixels).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import runlayout as layout
from .errors import InputError
from .io import Particles, read_labels
from .io.atomic import atomic_write_json, atomic_write_text, ensure_out_dir
from .io.names import align_names
from .metrics import ParticleMetrics, evaluate_picks


@dataclass
class Evaluation:
    overall: ParticleMetrics
    per_micrograph: dict[str, ParticleMetrics]
    radius: float
    scored: list[str]  # micrographs with truth that were scored
    unpicked: list[str] = field(default_factory=list)  # with truth, no picks
    no_truth: list[str] = field(default_factory=list)  # with picks, not in the truth: left out
    only_picked: bool = False

    def as_dict(self) -> dict:
        return {"radius": self.radius, "overall": self.overall.as_dict(),
                "per_micrograph": {k: v.as_dict() for k, v in self.per_micrograph.items()},
                "scored_micrographs": self.scored, "unpicked_micrographs": self.unpicked,
                "unpicked_excluded": self.only_picked, "micrographs_without_truth": self.no_truth}


def _names(items: list[str], k: int = 5) -> str:
    return ", ".join(items[:k]) + (f", ... ({len(items)} in all)" if len(items) > k else "")


def _picked_by_summary(picks_path: Path) -> set[str]:
    """Micrographs the ``pick_summary.json`` of the pick run that wrote ``picks_path`` lists."""
    folders = [picks_path.parent] if picks_path.is_file() else [picks_path, picks_path.parent]
    for folder in folders:
        f = folder / layout.PICK_SUMMARY
        try:
            per = json.loads(f.read_text()).get("per_micrograph")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(per, dict):
            return set(per)
    return set()


def _mask_shapes(mask_dir: Path) -> dict[str, tuple[int, int]]:
    from .io.micrographs import SUFFIXES
    from .masks import read_mask

    return {p.stem: read_mask(p).shape for p in sorted(mask_dir.iterdir())
            if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")}


def _micrograph_shapes(images: list[str]) -> dict[str, tuple[int, int]]:
    from .io import find_micrographs, read_micrograph

    shapes = {}
    for path in find_micrographs(images):
        mic = read_micrograph(path)
        shapes[mic.name] = mic.image.shape
    return shapes


def read_truth(truth_path: str, label_format: str | None = None, images: list[str] | None = None,
               log: Callable[[str], None] = print
               ) -> tuple[dict[str, Particles], dict[str, tuple[int, int]] | None]:
    """The truth as particle centres (a label file or folder, or a folder of mask images),
    and for masks without ``images`` the mask shapes the centres are in (else None).

    The disk radius of masks is estimated from the masks themselves (the match radius
    ``--radius`` is another thing: how far a pick may lie from a centre)."""
    from .masks import is_mask_dir, read_mask_labels

    p = Path(truth_path)
    if not (p.exists() and is_mask_dir(p)):
        return read_labels(p, fmt=label_format), None
    mask_shapes = None
    if images:
        shapes = _micrograph_shapes(images)
    else:
        shapes = mask_shapes = _mask_shapes(p)
        log(f"note: {p}: mask truth without --images: mask pixels are taken as micrograph pixels (pass --images "
            "MICS when the masks are smaller than the micrographs)")
    truth = read_mask_labels(p, shapes, None)
    if not truth:
        raise InputError(f"{p}: no mask image is named like a micrograph of --images ({_names(sorted(shapes))}); "
                         "masks pair with micrographs by file stem")
    return truth, mask_shapes


def _check_inside_masks(picks: dict[str, Particles], shapes: dict[str, tuple[int, int]], picks_path: str) -> None:
    for stem, p in picks.items():
        if stem in shapes and len(p):
            h, w = shapes[stem]
            if p.xy[:, 0].max() > w - 0.5 or p.xy[:, 1].max() > h - 0.5:
                raise InputError(f"{picks_path}: picks of '{stem}' reach x={p.xy[:, 0].max():.0f}, "
                                 f"y={p.xy[:, 1].max():.0f}, beyond its {w}x{h} px mask; the masks are smaller than the "
                                 "micrographs: pass --images MICS so the mask centres are scaled to micrograph pixels")


def _match_radius(radius: float | None, truth: dict[str, Particles], truth_path: str) -> float:
    if radius is not None:
        return float(radius)
    from .data import radius_from_diameters  # here: cryopick.data imports torch

    from_truth = radius_from_diameters(truth)
    if from_truth is None:
        raise InputError(f"{truth_path}: no particle diameter in the truth; pass --radius (match radius in px)")
    return from_truth


def evaluate_label_files(picks_path: str, truth_path: str, radius: float | None = None,
                         threshold: float | None = None, label_format: str | None = None,
                         images: list[str] | None = None, only_picked: bool = False,
                         log: Callable[[str], None] = print) -> Evaluation:
    """Score the picks in ``picks_path`` against ``truth_path``; warnings go to ``log``."""
    picks = read_labels(Path(picks_path), fmt=label_format)
    truth, mask_shapes = read_truth(truth_path, label_format, images, log)
    if not any(len(p) for p in truth.values()):
        raise InputError(f"{truth_path}: the truth holds no particles; nothing to evaluate against")
    summary = _picked_by_summary(Path(picks_path))
    align_names(truth, set(picks) | summary, truth_path)  # cryoSPARC UID prefixes: the picks' names win
    picks = {k: v for k, v in picks.items() if len(v) or k in truth}  # an empty file of another name: no picks
    if mask_shapes is not None:
        _check_inside_masks(picks, mask_shapes, picks_path)
    radius = _match_radius(radius, truth, truth_path)
    no_truth = sorted(set(picks) - set(truth))
    if picks and len(no_truth) == len(picks):
        raise InputError(f"{picks_path}: no micrograph name matches the truth ({no_truth[:3]} vs {sorted(truth)[:3]})")
    picked = set(picks) | summary
    unpicked = sorted(set(truth) - picked)
    scored = sorted(truth) if not only_picked else sorted(set(truth) & picked)
    _report_coverage(truth, scored, unpicked, no_truth, only_picked, picks_path, log)
    pick_arrays = {k: (v.xy, v.scores if v.scores is not None else np.ones(len(v))) for k, v in picks.items()
                   if k in scored}
    overall, per_mic = evaluate_picks(pick_arrays, {k: truth[k].xy for k in scored}, radius, threshold=threshold)
    return Evaluation(overall, per_mic, radius, scored, unpicked, no_truth, only_picked)


def _report_coverage(truth: dict, scored: list[str], unpicked: list[str], no_truth: list[str], only_picked: bool,
                     picks_path: str, log: Callable[[str], None]) -> None:
    if only_picked and not scored:
        raise InputError(f"{picks_path}: --only-picked, but none of the {len(truth)} micrographs with truth has picks "
                         f"(truth: {_names(sorted(truth))}); check the picks are of these micrographs")
    if unpicked and only_picked:
        log(f"scored the {len(scored)} micrographs with picks; left out {len(unpicked)} with truth but no picks "
            f"({_names(unpicked)})")
    elif unpicked:
        log(f"warning: {len(unpicked)} of {len(truth)} micrographs with truth have no picks ({_names(unpicked)}); "
            "they count as complete misses; pass --only-picked to score only the picked ones")
    if no_truth:
        log(f"warning: {len(no_truth)} picked micrographs are not in the truth ({_names(no_truth)}); their picks "
            "are left out of the scores")


def evaluate_files(picks_path: str, truth_path: str, radius: float | None = None, threshold: float | None = None,
                   out_dir: str | None = None, label_format: str | None = None, images: list[str] | None = None,
                   only_picked: bool = False, log: Callable[[str], None] = print) -> ParticleMetrics:
    """:func:`evaluate_label_files`, written into ``out_dir`` when given; returns the overall metrics."""
    result = evaluate_label_files(picks_path, truth_path, radius, threshold, label_format, images, only_picked, log)
    if out_dir:
        write_evaluation(result, out_dir)
    return result.overall


def write_evaluation(result: Evaluation, out_dir: str | Path) -> None:
    out = ensure_out_dir(out_dir)
    atomic_write_json(out / layout.METRICS, result.as_dict())  # an object: runlayout.read_evaluation
    curve = result.overall.pr_curve or {}
    rows = ["threshold,precision,recall"] + [f"{t:.6g},{p:.6g},{r:.6g}" for t, p, r in
                                             zip(curve.get("thresholds", []), curve.get("precision", []),
                                                 curve.get("recall", []))]
    atomic_write_text(out / layout.PR_CURVE, "\n".join(rows) + "\n")
    try:
        from .report.figures import plot_pr_curve
    except ImportError:
        return
    plot_pr_curve({"picks": result.overall}, out / "pr_curve.png")
