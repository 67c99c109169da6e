"""Training histories and their summaries, and the aggregation of runs over seeds and variants."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import InputError

PIXEL_METRICS = ("precision", "recall", "f1", "iou", "auc")


def _metric_subset(rec: dict | None) -> dict | None:
    if rec is None:
        return None
    out = {"epoch": rec.get("epoch")}
    out.update({m: rec.get(m) for m in PIXEL_METRICS})
    out["train_loss"] = rec.get("train_loss")
    if "phase" in rec:
        out["phase"] = rec["phase"]
    return out


def _evaluated(history: list[dict]) -> list[dict]:
    return [r for r in history if isinstance(r.get("f1"), (int, float)) and math.isfinite(r["f1"])]


def best_record(history: list[dict]) -> dict | None:
    """The evaluation with the highest validation F1 (the earliest on ties), or None."""
    evals = _evaluated(history)
    return max(evals, key=lambda r: r["f1"]) if evals else None


def summarize_history(history: list[dict]) -> dict:
    """final (last evaluation), best (highest F1), best_epoch and mean training seconds per epoch."""
    evals = _evaluated(history)
    best = best_record(history)
    seconds = [r["seconds"] for r in history if isinstance(r.get("seconds"), (int, float))]
    return {"final": _metric_subset(evals[-1]) if evals else None, "best": _metric_subset(best),
            "best_epoch": best["epoch"] if best else None,
            "final_epoch": history[-1].get("epoch") if history else None,
            "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None}


def curve_rows(history: list[dict], every: int = 10) -> list[dict]:
    """Validation records every ``every`` epochs (every evaluation when the run is shorter),
    plus the best and the last; each row has epoch, the pixel metrics and ``best`` (bool)."""
    if every < 1:
        raise InputError(f"--curve-every must be >= 1, got {every}")
    evals = _evaluated(history)
    if not evals:
        return []
    best = best_record(history)
    if evals[-1]["epoch"] < every:
        keep = evals
    else:
        keep = [r for r in evals if r["epoch"] % every == 0 or r is best or r is evals[-1]]
    rows = []
    for r in keep:
        row = _metric_subset(r)
        row["best"] = r is best
        if "phase_epoch" in r:
            row["phase_epoch"] = r["phase_epoch"]
        rows.append(row)
    return rows


def _read_json_list(path: Path) -> list[dict]:
    import json

    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else []


def selftrain_history(run_dir: str | Path, iterations: int) -> list[dict]:
    """The supervised phase's and every iteration's metrics.json as one history.

    Epochs count on across phases; each record keeps ``phase`` ("supervised",
    "iteration K") and ``phase_epoch`` (its epoch within the phase).
    """
    run_dir = Path(run_dir)
    phases = [("supervised", run_dir / "supervised")] + [
        (f"iteration {k}", run_dir / f"iteration_{k}") for k in range(1, iterations + 1)]
    history, offset = [], 0
    for phase, folder in phases:
        records = _read_json_list(folder / "metrics.json")
        for r in records:
            history.append({**r, "epoch": offset + r["epoch"], "phase": phase, "phase_epoch": r["epoch"]})
        if records:
            offset += records[-1]["epoch"]
    return history


def phase_folder(run_dir: Path, phase: str | None) -> Path:
    if phase and phase.startswith("iteration "):
        return run_dir / f"iteration_{phase.split()[1]}"
    return run_dir / "supervised"


def key_metrics(run: dict) -> dict[str, float | None]:
    """The flat numbers compared across variants and seeds."""
    out: dict[str, float | None] = {}
    for part in ("best", "final"):
        rec = run.get(part) or {}
        for m in PIXEL_METRICS:
            out[f"{part}_{m}"] = rec.get(m)
    for k in ("best_epoch", "parameters", "seconds_per_epoch", "inference_seconds"):
        out[k] = run.get(k)
    particle = run.get("particle") or {}
    for which in ("best", "final"):
        pm = particle.get(f"{which}_checkpoint") or {}
        out[f"particle_{which}_f1"] = pm.get("best_f1")
        out[f"particle_{which}_ap"] = pm.get("ap")
    return out


def num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def mean_std(values: list[Any]) -> tuple[float | None, float | None]:
    xs = [x for x in map(num, values) if x is not None]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return mean, std


def mean_history(histories: list[list[dict]]) -> list[dict]:
    """Per-epoch mean of several runs' records (numbers averaged; other keys from the first run)."""
    by_epoch: dict[Any, list[dict]] = {}
    for h in histories:
        for r in h:
            by_epoch.setdefault(r.get("epoch"), []).append(r)
    out = []
    for epoch, recs in by_epoch.items():
        merged = dict(recs[0])
        for k in set().union(*recs):
            if k in ("epoch", "phase_epoch"):
                continue
            vals = [r.get(k) for r in recs]
            if any(num(v) is not None for v in vals):
                merged[k] = mean_std(vals)[0]
        merged["n_runs"] = len(recs)
        out.append(merged)
    return out


def aggregate_runs(runs: list[dict], curve_every: int = 10) -> dict:
    """A variant's entry: the run itself (one seed) or the mean over seeds with mean/std/runs."""
    if len(runs) == 1:
        run = dict(runs[0])
        run["metrics"] = key_metrics(run)
        return run
    per = [key_metrics(r) for r in runs]
    mean, std = {}, {}
    for k in per[0]:
        mean[k], std[k] = mean_std([p[k] for p in per])
    history = mean_history([r.get("history") or [] for r in runs])
    particle = None
    if any(r.get("particle") for r in runs):
        particle = {f"{w}_checkpoint": {"best_f1": mean[f"particle_{w}_f1"], "ap": mean[f"particle_{w}_ap"]}
                    for w in ("best", "final")}

    def part(name: str) -> dict | None:
        if all(r.get(name) is None for r in runs):
            return None
        epochs = {(r.get(name) or {}).get("epoch") for r in runs}
        return {"epoch": epochs.pop() if len(epochs) == 1 else None,
                **{m: mean[f"{name}_{m}"] for m in PIXEL_METRICS}}

    return {"aggregate": f"mean over {len(runs)} seeds", "mode": runs[0].get("mode"),
            "final": part("final"), "best": part("best"), "best_epoch": mean["best_epoch"],
            "parameters": runs[0].get("parameters"), "seconds_per_epoch": mean["seconds_per_epoch"],
            "inference_seconds": mean["inference_seconds"], "particle": particle,
            "history": history, "curve": curve_rows(history, curve_every),
            "metrics": mean, "mean": mean, "std": std, "runs": runs}


def differences(variants: dict[str, dict]) -> tuple[dict, dict]:
    """({metric: {variant: value - reference}}, {metric: {variant: percent change}}), reference = first."""
    names = list(variants)
    ref = variants[names[0]]["metrics"]
    diff: dict[str, dict] = {}
    rel: dict[str, dict] = {}
    for k, a in ref.items():
        for n in names[1:]:
            b = variants[n]["metrics"].get(k)
            if num(a) is None or num(b) is None:
                continue
            diff.setdefault(k, {})[n] = b - a
            if a != 0:
                rel.setdefault(k, {})[n] = 100.0 * (b - a) / abs(a)
    return diff, rel


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):
        return json_safe(obj.item())
    return obj
