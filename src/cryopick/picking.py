"""Picking: micrographs -> probability maps -> particle coordinates with scores.

``Picker`` holds one model or an ensemble (several checkpoints whose probabilities are
averaged) together with the checkpoint's preprocessing. For each micrograph it runs
the shared preprocessing, tiled inference (bounded memory at any size), smooths the
map lightly (sigma 0.15 x the radius), extracts peaks with non-maximum suppression at a minimum
distance of half the particle radius, and maps the peaks back to original-micrograph
pixels. The score of a pick is the smoothed probability at its peak (close to the
mean probability inside the particle disk).

``calibrate_threshold`` picks labelled validation micrographs and returns the score
threshold with the best particle-level F1; training stores it in the checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from . import distributed as ddist
from .checkpoint import load_checkpoint, model_from_checkpoint, prep_from_checkpoint
from .config import PickConfig
from .data import Preprocessing, Sample
from .ensemble import member_states
from .errors import InputError
from .inference import predict_probability
from .io import read_micrograph
from .peaks import find_peaks
from .preprocess import preprocess, to_original

if TYPE_CHECKING:  # cryopick.metrics imports scipy.stats (~1 s): only calibration needs it
    from .metrics import ParticleMetrics

CANDIDATE_FLOOR = 0.05  # peaks below this smoothed probability are never kept
# Peaks at least half a radius apart, from a map smoothed with sigma 0.15 x radius: chosen on the
# validation micrographs of all four benchmark sets (benchmarks/results/levers.md). Particles in
# crowded CryoPPP micrographs sit closer than one radius (13-16 % of them), and heavier smoothing
# merges their peaks: validation AP 10059 0.623 -> 0.687, 10947 0.518 -> 0.673, EMPIAR-10017
# 0.845 -> 0.885, simulated 0.912 -> 0.910 (F1 up or equal on every set).
MIN_DISTANCE = 0.5  # x the particle radius
FALLBACK_THRESHOLD = 0.5  # the pick threshold of a checkpoint without a calibrated one
STAGES = ("read", "preprocess", "network", "peaks", "write")  # the timed stages of picking (Picker.timings)


@dataclass
class Picks:
    name: str
    xy: np.ndarray  # (N, 2) original-micrograph px, x = column
    scores: np.ndarray  # (N,)
    prob: np.ndarray | None = None  # (h, w) probability map of the preprocessed micrograph
    shape: tuple[int, int] | None = None  # (H, W) of the original micrograph


class Picker:
    def __init__(self, models: list[torch.nn.Module], prep: Preprocessing, cfg: PickConfig | None = None,
                 device: torch.device | str = "cpu", threshold: float | None = None, amp: bool = False):
        self.models, self.prep, self.cfg = models, prep, cfg or PickConfig()
        self.device, self.amp = torch.device(device), amp
        self.threshold = self.cfg.threshold if self.cfg.threshold is not None else threshold
        self.calibrated_threshold = threshold  # the checkpoint's (None: it has none)
        self.threshold_source = ("--threshold" if self.cfg.threshold is not None else
                                 "calibrated on validation micrographs" if threshold is not None else
                                 f"default {FALLBACK_THRESHOLD:g} (the checkpoint has no calibrated threshold)")
        self.tile_progress = None  # called as (tiles done, tiles in all) while a micrograph is predicted
        self.channels_last = False  # feed NHWC batches (models from fuse_for_inference are NHWC)
        self.timings: dict[str, float] | None = None  # a dict: seconds per stage (STAGES) are added to it
        for m in self.models:
            m.to(self.device).eval()

    @classmethod
    def from_checkpoints(cls, paths: list[str | Path], cfg: PickConfig | None = None, device="cpu",
                         amp: bool = False) -> "Picker":
        if not paths:
            raise InputError("no model given: pass --model CKPT (repeat it for an ensemble)")
        ckpts = [load_checkpoint(p) for p in paths]
        preps = [prep_from_checkpoint(c) for c in ckpts]
        for p, path in zip(preps[1:], paths[1:]):
            if (p.downsample, p.normalize) != (preps[0].downsample, preps[0].normalize):
                raise InputError(f"{path}: ensemble members must share preprocessing; it uses downsample "
                                 f"{p.downsample}/{p.normalize}, {paths[0]} uses {preps[0].downsample}/{preps[0].normalize}")
        models = [model_from_checkpoint({**c, "model_state": state}, p)  # train --ensemble: every member
                  for c, p in zip(ckpts, paths) for state in member_states(c)]
        thresholds = [c.get("pick_threshold") for c in ckpts if c.get("pick_threshold") is not None]
        prep = _pick_preprocessing(preps[0], cfg, any(c.get("general") for c in ckpts))
        return cls(models, prep, cfg, device, float(np.mean(thresholds)) if thresholds else None, amp)

    # -- one micrograph ---------------------------------------------------------------
    def probability(self, image_pre: np.ndarray) -> np.ndarray:
        return self.probability_with(image_pre, self.cfg.tta)

    def probability_with(self, image_pre: np.ndarray, tta: bool) -> np.ndarray:
        with self.stage("network"):
            return predict_probability(self.models, image_pre, tile=self.cfg.tile_size, overlap=self.cfg.overlap,
                                       batch_size=self.cfg.batch_size, device=self.device, amp=self.amp, tta=tta,
                                       channels_last=self.channels_last, progress=self.tile_progress)

    @contextmanager
    def stage(self, name: str):
        """Time a stage of picking into ``self.timings`` (when it is a dict)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.timings is not None:
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def peaks(self, prob: np.ndarray, floor: float = CANDIDATE_FLOOR) -> tuple[np.ndarray, np.ndarray]:
        """All candidate peaks (downsampled px) with scores >= ``floor``."""
        r = self.prep.downsampled_radius
        with self.stage("peaks"):
            smooth = gaussian_filter(prob, sigma=max(0.5, r * self.cfg.smooth)) if self.cfg.smooth > 0 else prob
            min_dist = (self.cfg.min_distance or MIN_DISTANCE * self.prep.radius) / self.prep.downsample
            edge = int(round(self.cfg.edge_margin * r))  # a particle cut by the edge is not a pick
            return find_peaks(smooth, min_distance=min_dist, threshold=floor, min_area=self.cfg.min_area,
                              exclude_border=edge, score=self.cfg.score, radius=max(1.0, self.prep.mask_radius))

    def pick_image(self, image: np.ndarray, name: str, keep_prob: bool = False, all_candidates: bool = False) -> Picks:
        return self._pick_preprocessed(self._preprocess(image), name, tuple(image.shape[:2]), keep_prob, all_candidates)

    def _preprocess(self, image: np.ndarray) -> np.ndarray:
        with self.stage("preprocess"):
            return preprocess(image, self.prep.downsample, self.prep.normalize)

    def _pick_preprocessed(self, pre: np.ndarray, name: str, shape: tuple[int, int], keep_prob: bool,
                           all_candidates: bool) -> Picks:
        prob = self.probability(pre)
        del pre  # the caller passes its only reference: freed before the peaks are found
        xy, scores = self.peaks(prob)
        xy = to_original(xy, self.prep.downsample) if len(xy) else xy.reshape(0, 2)
        if not all_candidates:
            t = self.threshold if self.threshold is not None else FALLBACK_THRESHOLD
            keep = scores >= t
            xy, scores = xy[keep], scores[keep]
        return Picks(name, xy, scores, prob if keep_prob else None, shape)

    @property
    def pick_threshold(self) -> float:
        """The score threshold picks are kept at."""
        return self.threshold if self.threshold is not None else FALLBACK_THRESHOLD

    def pick_file(self, path: str | Path, keep_prob: bool = False, all_candidates: bool = False) -> Picks:
        from .data import check_particle_fits

        with self.stage("read"):
            mic = read_micrograph(path)
        check_particle_fits(str(path), mic.image.shape, self.prep)
        name, shape = mic.name, tuple(mic.image.shape[:2])
        held = [self._preprocess(mic.image)]
        del mic  # the full-size image is freed before the network runs (a 10000^2 float32 is 400 MB) ...
        # ... and the preprocessed one once the network is done (popped: the callee holds the only reference)
        return self._pick_preprocessed(held.pop(), name, shape, keep_prob, all_candidates)

    def pick_sample(self, s: Sample) -> Picks:
        """Candidates on an already preprocessed sample, in downsampled px."""
        prob = self.probability(s.image)
        xy, scores = self.peaks(prob)
        return Picks(s.name, xy, scores, prob)


def _pick_preprocessing(prep: Preprocessing, cfg: PickConfig | None, general: bool) -> Preprocessing:
    """The checkpoint's preprocessing, with ``cfg.radius`` / ``cfg.downsample`` when given.
    A general model has no particle size of its own: it needs the radius (its downsampling
    then follows the automatic rule it was trained with)."""
    from .preprocess import auto_downsample

    radius = cfg.radius if cfg is not None and cfg.radius else None
    if radius is not None and not (np.isfinite(radius) and radius > 0):
        raise InputError(f"--radius must be a positive number of pixels, got {radius}")
    if general and radius is None:
        raise InputError("--model general has no particle size of its own: pass --radius (particle radius in "
                         "micrograph pixels)")
    downsample = cfg.downsample if cfg is not None and cfg.downsample else None
    if radius is not None:
        downsample = downsample or (auto_downsample(2 * radius) if general else prep.downsample)
        return dataclasses.replace(prep, downsample=float(downsample), radius=float(radius))
    if downsample:
        return dataclasses.replace(prep, downsample=downsample)
    return prep


def calibrate_threshold(picker: Picker, samples: list[Sample]) -> tuple[float | None, ParticleMetrics | None]:
    """F1-optimal score threshold on labelled samples (coordinates known), or (None, None)."""
    from .metrics import evaluate_picks

    labelled = [s for s in samples if s.coords is not None]
    if not labelled:
        return None, None
    picks, truth = {}, {}
    for s in labelled:
        p = picker.pick_sample(s)
        picks[s.name] = (p.xy, p.scores)
        truth[s.name] = s.coords
    overall, _ = evaluate_picks(picks, truth, picker.prep.downsampled_radius)
    return (float(overall.best_threshold) if overall.best_threshold is not None else None), overall


def pick_to_files(mics: list[str], models: list[str], cfg: PickConfig, out_dir: str | Path, device="cpu",
                  per_micrograph: bool = False, all_candidates: bool = False, save_maps: bool = False,
                  amp: bool | None = None, final_dir: str | Path | None = None,
                  dist: ddist.DistInfo | None = None) -> dict:
    """Pick every micrograph and write the requested formats into ``out_dir``; returns a summary.

    The picks are those scoring at least the threshold (``cfg.threshold``, else the one
    calibrated at training time, else 0.5); ``all_candidates`` writes every candidate peak
    instead (for PR curves), and says so in the files and the summary.

    ``final_dir``: where the outputs will be once ``out_dir`` is renamed (a staging folder
    of ``pick --overwrite``); the summary and the RELION index name the files there.

    ``amp`` (CUDA only; None: on for CUDA) runs the network in bf16/fp16. Under torchrun the
    micrographs are sharded over the ranks (``distributed.shard``), each rank writes the
    probability maps of its own share, the picks are gathered, and rank 0 writes the pick
    files and pick_summary.json; every rank returns the same summary. ``dist``: the process
    group as the caller set it up (default: :func:`process_group`).
    """
    from .io import find_micrographs
    from .io.atomic import atomic_write_json, ensure_out_dir
    from .pickfiles import write_pick_outputs

    device = torch.device(device)
    main = (dist or process_group(device)).is_main
    out = ensure_out_dir(out_dir)
    picker = make_picker(models, cfg, device, amp)
    picker.timings = {}
    paths = find_micrographs(mics)
    t0 = time.perf_counter()
    mine = _pick_share(picker, paths, ddist.shard_indices(len(paths)), out if save_maps else None, cfg, main,
                       all_candidates)
    picks = _merge(ddist.merge_shards(ddist.all_gather_object(mine)))
    seconds = time.perf_counter() - t0
    written, notes = [], {}
    if main:
        with picker.stage("write"):
            files, notes = write_pick_outputs(picks, out, cfg, box_size(cfg, picker), per_micrograph, all_candidates,
                                              listed=Path(final_dir) if final_dir else None, floor=CANDIDATE_FLOOR)
        written = [str(Path(final_dir) / Path(x).relative_to(out) if final_dir else x) for x in files]
    written, notes = ddist.broadcast_object((written, notes))
    summary = pick_summary(picker, picks.labels, models, all_candidates, seconds, len(paths))
    summary.update(outputs=written, **notes)
    summary["stage_seconds"] = {k: picker.timings.get(k, 0.0) for k in STAGES}  # this rank's, summed over micrographs
    if ddist.is_distributed():
        summary["processes"] = ddist.world_size()
    if main:
        atomic_write_json(out / "pick_summary.json", summary)
    ddist.barrier()
    return summary


def process_group(device: torch.device | str) -> ddist.DistInfo:
    """This process's place in the process group, set up where training sets it up
    (``train.setup_compute``, the one place a run joins the group). A single process is rank 0
    of 1 (or of the group it already joined) without importing the training code (~0.3 s of
    start-up)."""
    if not ddist.launched_distributed():
        return ddist.info()
    from .device import resolve_settings
    from .train import setup_compute

    return setup_compute(None, resolve_settings(torch.device(device)))[1]


def make_picker(models: list[str], cfg: PickConfig, device, amp: bool | None) -> Picker:
    from .inference import fuse_for_inference, keep_freed_memory, resolve_amp

    device = torch.device(device)
    picker = Picker.from_checkpoints(models, cfg, device=device, amp=resolve_amp(amp, device))
    # BatchNorm folded into the convolutions, NHWC: the same picks (float rounding), 1.6x faster on a CPU
    # (benchmarks/results/speed_*.md); only here, where the models are loaded for picking and never trained
    picker.models = [fuse_for_inference(m) for m in picker.models]
    picker.channels_last = True
    if device.type == "cpu":
        keep_freed_memory()
    return picker


def box_size(cfg: PickConfig, picker: Picker) -> int:
    """The .box side: ``cfg.box_size``, else twice the particle diameter."""
    return int(cfg.box_size or int(round(4 * picker.prep.radius)))


def pick_one(picker: Picker, path: Path, save_maps_to: Path | None, all_candidates: bool):
    """Pick one micrograph file: (stem, Particles, micrograph path as given, (H, W))."""
    from .io import Particles
    from .io.micrographs import write_mrc

    p = picker.pick_file(path, keep_prob=save_maps_to is not None, all_candidates=all_candidates)
    if save_maps_to is not None:
        with picker.stage("write"):
            write_mrc(save_maps_to / "maps" / f"{p.name}_prob.mrc", p.prob)
    return p.name, Particles(p.xy, p.scores, 2 * picker.prep.radius), str(path), p.shape


def _pick_share(picker: Picker, paths: list[Path], indices, save_maps_to: Path | None, cfg: PickConfig, main: bool,
                all_candidates: bool) -> list:
    from .progress import Progress

    mine = []
    indices = list(indices)
    with Progress(len(indices), "pick", every=cfg.progress_seconds, enabled=main) as bar:
        picker.tile_progress = bar.tile
        try:
            for i in indices:
                bar.start(paths[i].name)
                mine.append((i, pick_one(picker, paths[i], save_maps_to, all_candidates)))
                bar.update()
        finally:
            picker.tile_progress = None
    return mine


def _merge(rows: list):
    from .pickfiles import PickSet

    picks = PickSet()
    for name, particles, path, shape in rows:
        picks.labels[name], picks.paths[name], picks.shapes[name] = particles, path, shape
    return picks


def pick_summary(picker: Picker, labels: dict, models: list[str], all_candidates: bool, seconds: float,
                 n_micrographs: int) -> dict:
    """What pick_summary.json holds (without the output files)."""
    return {"n_micrographs": n_micrographs, "n_picks": int(sum(len(v) for v in labels.values())),
            "all_candidates": bool(all_candidates),
            "threshold": CANDIDATE_FLOOR if all_candidates else picker.pick_threshold,
            "threshold_source": (f"--all-candidates: every candidate peak (score >= {CANDIDATE_FLOOR:g})"
                                 if all_candidates else picker.threshold_source),
            "calibrated_threshold": picker.calibrated_threshold, "seconds": seconds,
            "seconds_per_micrograph": seconds / max(1, n_micrographs), "models": [str(m) for m in models],
            "downsample": picker.prep.downsample, "radius": picker.prep.radius,
            "per_micrograph": {k: len(v) for k, v in labels.items()}}
