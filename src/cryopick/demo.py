"""The demo: simulate -> self-train (supervised phase + iterations) -> pick -> evaluate
-> compare U-Net with Attention U-Net -> HTML report, on CPU in a few minutes.

Training micrographs carry sparse labels (30 % of the particles), validation and test
micrographs every particle, so the figures it prints are honest.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import runlayout as layout
from .config import RunConfig
from .io.atomic import atomic_write_json, ensure_out_dir
from .simulate import SimulationConfig
from .splits import simulated_splits


@dataclass
class DemoSettings:
    n_train: int = 5
    n_val: int = 2
    n_test: int = 2
    size: int = 352
    diameter: float = 32.0
    snr: float = 0.05
    labelled_fraction: float = 0.3
    contaminants: int = 2
    epochs: int = 16
    iterations: int = 2
    retrain_epochs: int = 5
    compare_epochs: int = 6
    base_features: int = 8
    patch_size: int = 96
    patches_per_epoch: int = 48
    seed: int = 42

    @classmethod
    def quick(cls) -> "DemoSettings":
        return cls(n_train=2, n_val=1, n_test=1, size=128, diameter=16, epochs=2, iterations=1, retrain_epochs=1,
                   compare_epochs=1, base_features=4, patch_size=64, patches_per_epoch=8)


def run_demo(out_dir: str | Path, s: DemoSettings, device: str = "auto", log: Callable[[str], None] = print) -> dict:
    from .selftrain import selftrain_run

    out = ensure_out_dir(out_dir)
    t_start = time.perf_counter()
    timings = {}

    def step(name: str):
        timings[name] = time.perf_counter()
        log(f"\n== {name} ==")

    step("simulate")
    sim_cfg = SimulationConfig(size=s.size, diameter=s.diameter, snr=s.snr, labelled_fraction=s.labelled_fraction,
                               contaminants=s.contaminants, seed=s.seed)
    paths = simulated_splits(out / "data", sim_cfg, s.n_train, s.n_val, s.n_test)
    log(f"{s.n_train} training micrographs ({s.labelled_fraction:.0%} of particles labelled), {s.n_val} validation, "
        f"{s.n_test} test; {s.size}x{s.size} px, particle diameter {s.diameter:g} px, SNR {s.snr}")

    cfg = RunConfig.from_dict({
        "data": {**paths.data_options(), "particles_per_micrograph": paths.particles_per_micrograph},
        "model": {"arch": "unet", "base_features": s.base_features},
        "train": {"epochs": s.epochs, "patch_size": s.patch_size, "patches_per_epoch": s.patches_per_epoch,
                  "seed": s.seed, "device": device},
        "selftrain": {"iterations": s.iterations, "retrain_epochs": s.retrain_epochs, "dynamic_thresholds": True}})

    step("train + self-train")
    summary = selftrain_run(cfg, out / "selftrain", log=log)

    step("pick + evaluate")
    results = {label: _pick_and_evaluate(out, label, ckpt, cfg, paths, device, log)
               for label, ckpt in [("supervised", out / "selftrain" / layout.BASELINE_MODEL),
                                   ("self-trained", out / "selftrain" / layout.FINAL_MODEL)]}

    step("figures")
    _figures(out, paths, log)

    step("compare U-Net vs Attention U-Net")
    comparison = _compare(out, cfg, s, log)

    step("report")
    result = {"settings": dataclasses.asdict(s), "selftrain": {"baseline": summary.get("baseline"),
                                                               "final": summary.get("final")},
              "test_particles": results, "comparison": comparison, "test_micrographs": str(paths.test_mics),
              "seconds": time.perf_counter() - t_start, "report": str(out / "report.html")}
    atomic_write_json(out / layout.DEMO_SUMMARY, result)  # first: the report's summary reads it
    report = _report(out, log)
    total = time.perf_counter() - t_start
    result.update(seconds=total, report=str(report))
    atomic_write_json(out / layout.DEMO_SUMMARY, result)
    log(f"\ndemo finished in {total:.0f} s; report: {report}")
    return result


def _pick_and_evaluate(out: Path, label: str, ckpt: Path, cfg: RunConfig, paths, device: str, log) -> dict:
    """The picks at the calibrated threshold (what a user exports), scored on the test micrographs;
    and every candidate, for the ranking metrics (AP, the best F1 over all thresholds)."""
    from .evaluation import evaluate_files
    from .picking import pick_to_files

    pick_dir = out / f"picks_{label.replace('-', '_')}"
    s = pick_to_files([str(paths.test_mics)], [str(ckpt)], cfg.pick, pick_dir, device=_device(device))
    m = evaluate_files(str(pick_dir / "picks.star"), str(paths.test_labels), radius=paths.radius,
                       threshold=s["threshold"], out_dir=str(pick_dir / "evaluation"), log=log)
    cand_dir = pick_dir / "all_candidates"
    pick_to_files([str(paths.test_mics)], [str(ckpt)], cfg.pick, cand_dir, device=_device(device), all_candidates=True)
    c = evaluate_files(str(cand_dir / "picks.star"), str(paths.test_labels), radius=paths.radius,
                       out_dir=str(pick_dir / "evaluation_all_candidates"), log=log)
    log(f"{label:>13}: {s['n_picks']} picks at threshold {s['threshold']:.3f} ({s['threshold_source']}): "
        f"test P {m.precision:.3f}  R {m.recall:.3f}  F1 {m.f1:.3f}; over all candidates AP {c.ap:.3f}, "
        f"best F1 {c.best_f1:.3f} at threshold {c.best_threshold if c.best_threshold is not None else float('nan'):.3f}")
    return {"threshold": s["threshold"], "threshold_source": s["threshold_source"], "n_picks": s["n_picks"],
            "picks": m.as_dict(), "all_candidates": c.as_dict(), "precision": m.precision, "recall": m.recall,
            "f1": m.f1, "ap": c.ap, "best_f1": c.best_f1, "picks_file": str(pick_dir / "picks.star")}


def _device(device: str):
    from .device import resolve_device

    return resolve_device(device)


def _figures(out: Path, paths, log) -> None:
    """Picks on a test micrograph (TP/FP/miss), its probability map, augmentation examples."""
    try:
        from .report import figures
    except ImportError:
        log("figures skipped (report module unavailable)")
        return
    import numpy as np

    from .augment import save_augmentation_examples
    from .io import find_micrographs, read_labels, read_micrograph
    from .picking import Picker

    fig_dir = ensure_out_dir(out / "figures")
    ckpt = out / "selftrain" / layout.FINAL_MODEL
    picker = Picker.from_checkpoints([str(ckpt)])
    mic = read_micrograph(find_micrographs([str(paths.test_mics)])[0])
    picks = picker.pick_image(mic.image, mic.name, keep_prob=True)
    truth = read_labels(paths.test_labels)[mic.name].xy
    figures.plot_picks(mic.image, picks.xy, truth_xy=truth, radius=paths.radius, path=fig_dir / "picks_test.png",
                       scores=picks.scores, title=f"{mic.name}: picks at threshold {picker.pick_threshold:.2f}")
    figures.plot_probability_map(mic.image, picks.prob, fig_dir / "probability_map.png")
    from .data import load_samples

    sample = load_samples([str(paths.train_mics)], str(paths.train_labels), radius=paths.radius, downsample=None)
    s0 = sample.labelled[0]
    # a 128 px window around the first labelled particle, so the masks show something
    h, w = s0.image.shape
    size = min(128, h, w)
    x, y = (s0.coords[0] if s0.coords is not None and len(s0.coords) else (w / 2, h / 2))
    y0 = int(np.clip(y - size / 2, 0, h - size))
    x0 = int(np.clip(x - size / 2, 0, w - size))
    crop = np.s_[y0 : y0 + size, x0 : x0 + size]
    save_augmentation_examples(s0.image[crop], s0.mask[crop], fig_dir / "augmentation_examples.png")
    log(f"figures in {fig_dir}")


def _compare(out: Path, cfg: RunConfig, s: DemoSettings, log) -> dict | None:
    from .compare import parse_vary, run_comparison

    c = dataclasses.replace(cfg)
    c.train = dataclasses.replace(cfg.train, epochs=s.compare_epochs)
    result = run_comparison(c, parse_vary("arch=unet,attention-unet"), out / "compare", log=log)
    _attention_figure(out, log)
    return {name: v.get("metrics") for name, v in result.get("variants", {}).items()}


def _attention_figure(out: Path, log) -> None:
    """Attention maps of every level of the comparison's Attention U-Net on a validation micrograph."""
    from .checkpoint import load_checkpoint, model_from_checkpoint, prep_from_checkpoint
    from .data import load_samples
    from .report.figures import plot_attention_maps

    ckpt_path = out / "compare" / "attention-unet" / layout.BEST_MODEL
    if not ckpt_path.exists():
        return
    ckpt = load_checkpoint(ckpt_path)
    data = load_samples([str(out / "data" / "val")], None, radius=None, downsample=None,
                        prep=prep_from_checkpoint(ckpt), require_labels=False)
    plot_attention_maps(model_from_checkpoint(ckpt, ckpt_path), data.samples[0].image,
                        out / "figures" / "attention_maps.png")
    log(f"attention maps in {out / 'figures' / 'attention_maps.png'}")


def _report(out: Path, log) -> Path | None:
    try:
        from .report.html import write_report
    except ImportError:
        log("report skipped (report module unavailable)")
        return None
    return write_report(out, out / "report.html")
