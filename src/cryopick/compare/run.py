"""Running a comparison: train and measure every variant, then write comparison.json / .md."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

from ..config import RunConfig, with_command_defaults
from ..device import DeviceSettings
from ..errors import InputError
from .fairness import check_only_differs, differing_keys, flatten, variant_configs, within
from .fields import Variation
from .history import (aggregate_runs, best_record, curve_rows, differences, json_safe, phase_folder,
                      selftrain_history, summarize_history)
from .markdown import render_markdown


def _isolated(data):
    """A copy of a RunData whose samples can be changed freely (self-training rewrites masks).

    Everything is deep-copied except the image arrays, which training only reads.
    """
    from ..pipeline import RunData

    memo = {id(s.image): s.image for s in list(data.train) + list(data.val)}
    return RunData(copy.deepcopy(data.train, memo), copy.deepcopy(data.val, memo), data.prep, list(data.warnings))


def _compute(cfg: RunConfig):
    """The device settings and process group of a run on ``cfg``, set up where ``train_run`` sets them up."""
    from ..train import setup_compute

    return setup_compute(cfg.train)


def measure_checkpoint(path: Path, val: list, cfg: RunConfig, hw: DeviceSettings | None = None) -> dict:
    """Parameters, inference seconds per validation micrograph and particle metrics of one checkpoint
    (``hw``: the device settings, default from ``cfg.train``)."""
    from ..models import count_parameters
    from ..picking import Picker, calibrate_threshold

    hw = hw or _compute(cfg)[0]
    picker = Picker.from_checkpoints([path], cfg.pick, device=hw.device, amp=hw.amp)
    out: dict[str, Any] = {"checkpoint": str(path), "parameters": count_parameters(picker.models[0]),
                           "inference_seconds": None, "particle": None}
    if not val:
        return out
    picker.probability(val[0].image)  # warm-up (allocations, kernel selection), not timed
    times: list[float] = []
    untimed = picker.probability

    def timed(image):
        t0 = time.perf_counter()
        prob = untimed(image)  # a numpy array: the device has finished
        times.append(time.perf_counter() - t0)
        return prob

    picker.probability = timed
    for s in val:
        if s.coords is None:
            picker.probability(s.image)
    _, metrics = calibrate_threshold(picker, val)  # maps every labelled sample once
    out["inference_seconds"] = sum(times) / len(times) if times else None
    out["particle"] = metrics.as_dict() if metrics is not None else None
    return out


def train_and_measure(cfg: RunConfig, mode: str, run_dir: Path, data, curve_every: int = 10,
                      log: Callable[[str], None] = print) -> dict:
    """Train one variant (``mode`` 'train' or 'selftrain') into ``run_dir`` and measure it."""
    if mode == "selftrain":
        from ..selftrain import selftrain_run

        selftrain_run(cfg, run_dir, log=log, data=data)
        history = selftrain_history(run_dir, cfg.selftrain.iterations)
        best = best_record(history)
        final_ckpt = run_dir / "final_model.pt"
        best_ckpt = (phase_folder(run_dir, best.get("phase")) / "best_model.pt") if best else final_ckpt
    else:
        from ..pipeline import train_run

        result, _ = train_run(cfg, run_dir, log=log, data=data)
        history = result.history
        best_ckpt, final_ckpt = run_dir / "best_model.pt", run_dir / "model.pt"
    summary = summarize_history(history)
    log("measuring inference time and particle-level metrics")
    hw, _ = _compute(cfg)
    best_m = measure_checkpoint(best_ckpt, data.val, cfg, hw)
    same = summary["best_epoch"] is not None and summary["best_epoch"] == summary["final_epoch"]
    final_m = dict(best_m, checkpoint=str(final_ckpt)) if same else measure_checkpoint(final_ckpt, data.val, cfg, hw)
    particle = None
    if best_m["particle"] is not None or final_m["particle"] is not None:
        particle = {"best_checkpoint": best_m["particle"], "final_checkpoint": final_m["particle"]}
    return {"mode": mode, **summary, "parameters": best_m["parameters"],
            "inference_seconds": best_m["inference_seconds"], "particle": particle,
            "checkpoints": {"best": best_ckpt.name if best_ckpt.parent == run_dir else
                            str(best_ckpt.relative_to(run_dir)), "final": final_ckpt.name},
            "history": history, "curve": curve_rows(history, curve_every)}


def _split_info(data) -> dict:
    return {"train": len(data.train), "train_labelled": sum(s.mask is not None for s in data.train),
            "val": len(data.val), "val_names": [s.name for s in data.val]}


def _plan(base: RunConfig, variation: Variation, seeds: list[int]) -> dict[int, dict[str, RunConfig]]:
    """Every config of every seed, built and checked before anything trains."""
    plan: dict[int, dict[str, RunConfig]] = {}
    for s in seeds:
        b = copy.deepcopy(base)
        b.train.seed = s
        plan[s] = variant_configs(b, variation)
        check_only_differs(plan[s], variation.path)
    return plan


class _DataCache:
    """The data, loaded once and split once (seed of the first run); a varied ``data.*`` setting:
    once per variant."""

    def __init__(self, variation: Variation, split_seed: int, log: Callable[[str], None]):
        self.per_variant, self.split_seed, self.log = variation.section == "data", split_seed, log
        self.loaded: dict[str | None, Any] = {}

    def __call__(self, name: str, cfg: RunConfig):
        from ..pipeline import load_run_data

        key = name if self.per_variant else None
        if key not in self.loaded:
            c = copy.deepcopy(cfg)
            c.train.seed = self.split_seed
            self.loaded[key] = load_run_data(c, self.log)
        return self.loaded[key]

    def split(self, names: list[str]) -> dict:
        if self.per_variant:
            return {"seed": self.split_seed, "per_variant": {n: _split_info(self.loaded[n]) for n in names}}
        return {"seed": self.split_seed, **_split_info(self.loaded[None])}


def _derived(resolved: dict[str, RunConfig], variation: Variation, raw_keys: list[str]) -> dict[str, dict]:
    """Settings that differ after resolution only because the varied field does (e.g. the PU prior)."""
    flat = {n: flatten(c.to_dict()) for n, c in resolved.items()}
    return {k: {n: flat[n].get(k) for n in resolved}
            for k in differing_keys(resolved) if not within(k, variation.path) and k not in raw_keys}


def _train_all(plan: dict[int, dict[str, RunConfig]], variation: Variation, data_for: _DataCache, out: Path,
               curve_every: int, log: Callable[[str], None]) -> dict[str, list[dict]]:
    seeds, names = list(plan), list(variation.names)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for s in seeds:
        for name, value in zip(names, variation.values):
            cfg = plan[s][name]
            run_dir = out / name if len(seeds) == 1 else out / name / f"seed_{s}"
            tag = f"[{name}]" if len(seeds) == 1 else f"[{name} seed {s}]"

            def vlog(msg: str, tag: str = tag) -> None:
                log(f"{tag} {msg}")

            vlog(f"training into {run_dir}")
            run = train_and_measure(cfg, variation.mode(value), run_dir, _isolated(data_for(name, cfg)),
                                    curve_every, vlog)
            runs[name].append({"seed": s, "run_dir": str(run_dir.relative_to(out)), **run})
    return runs


def _figures(variants: dict[str, dict], out: Path, log: Callable[[str], None]) -> dict[str, str]:
    try:
        from ..report.figures import plot_training_curves
    except ImportError:
        return {}
    try:
        plot_training_curves({n: v.get("history") or [] for n, v in variants.items()}, out / "training_curves.png")
    except Exception as e:  # a figure must not cost the comparison
        log(f"warning: training-curve figure not written ({type(e).__name__}: {e})")
        return {}
    return {"training_curves": "training_curves.png"}


def run_comparison(base: RunConfig, variation: Variation, out_dir: str | Path, seeds: list[int] | None = None,
                   curve_every: int = 10, log: Callable[[str], None] = print) -> dict:
    """Train every variant of ``variation`` on ``base`` (per seed), write comparison.json/.md; return the result."""
    from .. import __version__
    from ..io.atomic import atomic_write_json, atomic_write_text, ensure_out_dir
    from ..pipeline import resolve

    if curve_every < 1:
        raise InputError(f"--curve-every must be >= 1, got {curve_every}")
    if seeds is not None and variation.path == "train.seed":
        raise InputError("--vary seed and --seeds cannot be combined; vary one or the other")
    base = with_command_defaults(base, "compare")
    seeds = list(seeds) if seeds else [base.train.seed]
    out = ensure_out_dir(out_dir)
    plan = _plan(base, variation, seeds)
    raw_keys = differing_keys(plan[seeds[0]])
    names = list(variation.names)
    log(f"compare: {variation.path} = {' vs '.join(names)}; seed(s) {', '.join(map(str, seeds))}; "
        f"config check passed (the variants differ only in {variation.path})")
    hw, dist = _compute(base)  # under torchrun every rank trains, rank 0 writes the comparison
    data_for = _DataCache(variation, seeds[0], log)
    resolved = {n: resolve(c, data_for(n, c), _compute(c)[0]) for n, c in plan[seeds[0]].items()}
    derived = _derived(resolved, variation, raw_keys)
    for k, vals in derived.items():
        log(f"note: {k} follows from {variation.path}: " + ", ".join(f"{n} {v}" for n, v in vals.items()))

    variants = {n: aggregate_runs(r, curve_every)
                for n, r in _train_all(plan, variation, data_for, out, curve_every, log).items()}
    diff, rel = differences(variants)
    result = {
        "cryopick_version": __version__, "field": variation.path, "field_as_given": variation.field,
        "values": list(variation.values), "names": names,
        "modes": {n: variation.mode(v) for n, v in zip(names, variation.values)},
        "seeds": seeds, "device": str(hw.device), "split": data_for.split(names),
        "config_check": {"ok": True, "differs_only_in": variation.path, "differing_keys": raw_keys,
                         "derived_differences": derived},
        "configs": {n: c.to_dict() for n, c in resolved.items()}, "reference": names[0], "variants": variants,
        "differences": diff, "relative_differences": rel,
        "figures": _figures(variants, out, log) if dist.is_main else {},
    }
    result = json_safe(result)
    if dist.is_main:
        atomic_write_json(out / "comparison.json", result)
        atomic_write_text(out / "comparison.md", render_markdown(result))
        log(f"comparison written to {out / 'comparison.md'} and {out / 'comparison.json'}")
    return result
