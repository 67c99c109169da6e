"""Fair comparisons: train variants that differ in exactly one setting, then tabulate them.

``run_comparison(base, variation, out_dir)`` trains one run per value of the varied
setting (``Variation``, from ``parse_vary("arch=unet,attention-unet")``) under one shared
:class:`~cryopick.config.RunConfig`:

- every variant's config is built from the same base and the configs are diffed
  (:func:`check_only_differs`): anything but the named field differing is refused;
- the data are loaded once (one preprocessing, one train/validation split) and every
  variant trains on its own copy of the samples (self-training rewrites masks in place);
  only a varied ``data.*`` setting loads the data once per variant;
- every variant uses the same seed (or the same list of seeds, ``--seeds``).

The special field ``selftrain`` (values off/on) compares supervised training
(:func:`~cryopick.pipeline.train_run`) with self-training
(:func:`~cryopick.selftrain.selftrain_run`) under the same config; any ``selftrain.*``
field runs self-training for every variant.

Per run it records the final (last evaluated) and best (highest validation F1) pixel
precision / recall / F1 / IoU / AUC, the best epoch, the parameter count, training seconds
per epoch, inference seconds per validation micrograph (the picker's probability map,
after one warm-up call), and particle-level best F1 / AP of the best and the final
checkpoint on the validation micrographs (:func:`~cryopick.picking.calibrate_threshold`).

Outputs in ``out_dir``: ``comparison.json``, ``comparison.md`` (the seed reports'
tables), ``training_curves.png`` (when the figures module is available) and one normal
run directory per variant (``<variant>/``, or ``<variant>/seed_<s>/`` with several seeds).
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig
from .errors import InputError
from .io.formats import FORMATS as LABEL_FORMATS

SECTIONS = ("data", "model", "train", "selftrain", "pick")
SELFTRAIN_MODE = "selftrain"  # the special field: supervised (off) vs self-training (on)
PIXEL_METRICS = ("precision", "recall", "f1", "iou", "auc")
TRUE_WORDS = ("on", "true", "yes", "1")
FALSE_WORDS = ("off", "false", "no", "0")
NONE_WORDS = ("none", "null", "auto")
SEQ_SEP = ":"  # list / pair values: star:box, 0.98:0.02 (',' separates the variants)
CHOICES = {
    "train.loss": ("bce", "focal", "dice", "combined"),
    "train.scheduler": ("cosine", "warm-restarts"),
    "data.normalize": ("robust", "zscore", "none"),
    "data.label_format": tuple(LABEL_FORMATS),
    "pick.score": ("peak", "mean"),
}


# --------------------------------------------------------------------------- fields and values


def _section_types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(type(getattr(RunConfig(), section)))


def _all_paths() -> list[str]:
    return [f"{s}.{name}" for s in SECTIONS for name in _section_types(s)]


def resolve_field(field: str) -> str:
    """The config path (``section.field``) a --vary FIELD names, or ``"selftrain"`` (the special switch).

    Plain names are looked up in every section; a name that is also a picking option
    (``batch_size``, ``tile_size``, ``downsample``) means the training one: write
    ``pick.NAME`` for the other. Dashes count as underscores.
    """
    f = field.strip().replace("-", "_")
    if f == SELFTRAIN_MODE:
        return SELFTRAIN_MODE
    if "." in f:
        section, _, name = f.partition(".")
        if section in SECTIONS and name in _section_types(section):
            return f"{section}.{name}"
    else:
        found = [s for s in SECTIONS if f in _section_types(s)]
        if len(found) > 1:
            found = [s for s in found if s != "pick"]
        if found:
            return f"{found[0]}.{f}"
    known = _all_paths()
    close = difflib.get_close_matches(f, known + [p.split(".")[1] for p in known] + [SELFTRAIN_MODE], n=3)
    hint = (f"; did you mean {', '.join(close)}?" if close
            else "; use a config field such as arch, loss, augment, train.lr")
    raise InputError(f"--vary: unknown field {field!r}{hint}")


def _field_hint(path: str) -> Any:
    if path == SELFTRAIN_MODE:
        return bool
    section, name = path.split(".")
    return _section_types(section)[name]


def _choices(path: str) -> tuple[str, ...] | None:
    if path == "model.arch":
        from .models import ARCHITECTURES

        return tuple(ARCHITECTURES)
    return CHOICES.get(path)


def _convert(hint: Any, text: str, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and text.lower() in NONE_WORDS:
            return None
        return _convert(inner[0], text, path)
    if origin in (list, tuple):
        parts = [p.strip() for p in text.split(SEQ_SEP)] if text else []
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(parts) != len(args):
                raise InputError(f"--vary {path}: {text!r} needs {len(args)} values joined by '{SEQ_SEP}'")
            return tuple(_convert(a, p, path) for a, p in zip(args, parts))
        elem = args[0] if args else str
        return origin(_convert(elem, p, path) for p in parts)
    if hint is bool:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise InputError(f"--vary {path}: {text!r} is not on/off (use on, off, true, false, yes or no)")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise InputError(f"--vary {path}: {text!r} is not a whole number") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--vary {path}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"--vary {path}: {text!r} is not a finite number")
        return value
    if hint is str:
        choices = _choices(path)
        if choices is not None and text not in choices:
            raise InputError(f"--vary {path}: {text!r} is not one of {', '.join(choices)}")
        return text
    raise InputError(f"--vary {path}: settings of type {hint} cannot be varied")


def parse_value(field: str, text: str) -> Any:
    """``text`` converted to the type of config field ``field`` (plain or dotted name).

    bool: on/off/true/false/yes/no; int; float; str (checked against the known choices);
    optional settings also take ``none``/``auto``; lists and pairs join items with ':'.
    """
    return _convert(_field_hint(resolve_field(field)), text.strip(), resolve_field(field))


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "auto"
    if isinstance(value, (list, tuple)):
        return SEQ_SEP.join(_display(v) for v in value)
    return str(value)


@dataclass
class Variation:
    """One varied setting: its config path, the parsed values and the variants' names."""

    field: str  # as given
    path: str  # "model.arch" ..., or "selftrain" (supervised vs self-training)
    values: list[Any]
    names: list[str]

    @property
    def section(self) -> str:
        return self.path.split(".")[0]

    def mode(self, value: Any) -> str:
        """'selftrain' or 'train': which pipeline a variant with ``value`` runs."""
        if self.path == SELFTRAIN_MODE:
            return "selftrain" if value else "train"
        return "selftrain" if self.section == "selftrain" else "train"


def parse_vary(spec: str) -> Variation:
    """``FIELD=V1,V2[,...]`` -> :class:`Variation` (at least two distinct values).

    Variants of a text setting are named by their value (``unet``); others by
    ``field=value`` (``augment=off``, ``lr=0.001``), which is also their run folder.
    """
    field, eq, rest = spec.partition("=")
    if not eq or not field.strip():
        raise InputError(f"--vary {spec!r}: expected FIELD=V1,V2 (e.g. arch=unet,attention-unet)")
    path = resolve_field(field)
    hint = _field_hint(path)
    tokens = [t.strip() for t in rest.split(",")]
    if len(tokens) < 2 or any(not t for t in tokens):
        raise InputError(f"--vary {spec!r}: give two or more comma-separated values (e.g. {field.strip()}=A,B)")
    values = [_convert(hint, t, path) for t in tokens]
    for i, v in enumerate(values):
        if v in values[:i]:
            raise InputError(f"--vary {spec!r}: value {tokens[i]!r} is given twice")
    leaf = path.split(".")[-1]
    names = []
    for t, v in zip(tokens, values):
        raw = t if hint is str else f"{leaf}={_display(v) if isinstance(v, bool) else t}"
        name = re.sub(r"[^A-Za-z0-9._=+-]", "_", raw)
        if name.startswith("."):
            name = "_" + name
        if name in names:
            raise InputError(f"--vary {spec!r}: values {t!r} and another give the same folder name {name!r}")
        names.append(name)
    return Variation(field.strip(), path, values, names)


def parse_seeds(text: str) -> list[int]:
    """``"42,43"`` -> [42, 43] (distinct whole numbers)."""
    try:
        seeds = [int(t) for t in text.split(",")]
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected comma-separated whole numbers, e.g. 42,43,44") from None
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds {text!r}: a seed is given twice")
    return seeds


# --------------------------------------------------------------------------- configs and the fairness check


def variant_configs(base: RunConfig, variation: Variation) -> dict[str, RunConfig]:
    """One config per variant: a copy of ``base`` with the varied field set (unchanged for 'selftrain')."""
    out = {}
    for name, value in zip(variation.names, variation.values):
        cfg = copy.deepcopy(base)
        if variation.path != SELFTRAIN_MODE:
            section, field = variation.path.split(".")
            setattr(getattr(cfg, section), field, copy.deepcopy(value))
        out[name] = cfg
    return out


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


_MISSING = object()


def differing_keys(configs: dict[str, RunConfig]) -> list[str]:
    """Dotted config keys (``train.lr``) whose value is not the same in every config."""
    flats = [_flatten(c.to_dict()) for c in configs.values()]
    if not flats:
        return []
    keys = set().union(*flats)
    return sorted(k for k in keys
                  if any(not _same(f.get(k, _MISSING), flats[0].get(k, _MISSING)) for f in flats[1:]))


def _within(key: str, path: str) -> bool:
    return key == path or key.startswith(path + ".")


def check_only_differs(configs: dict[str, RunConfig], field: str) -> None:
    """Refuse (InputError) unless the configs differ in nothing but ``field`` (plain or dotted).

    For the special field ``selftrain`` the configs may differ only inside the
    ``selftrain`` section (which supervised training ignores).
    """
    if len(configs) < 2:
        raise InputError("a comparison needs at least two variants")
    path = resolve_field(field)
    extra = [k for k in differing_keys(configs) if not _within(k, path)]
    if extra:
        flats = {n: _flatten(c.to_dict()) for n, c in configs.items()}
        k = extra[0]
        values = ", ".join(f"{n}: {flats[n].get(k)!r}" for n in configs)
        raise InputError(f"unfair comparison: the variants must differ only in {path} but also differ in "
                         f"{', '.join(extra)} ({k} is {values}); give every other setting once, for all variants")


# --------------------------------------------------------------------------- histories and summaries


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


def _phase_folder(run_dir: Path, phase: str | None) -> Path:
    if phase and phase.startswith("iteration "):
        return run_dir / f"iteration_{phase.split()[1]}"
    return run_dir / "supervised"


# --------------------------------------------------------------------------- one run


def _isolated(data):
    """A copy of a RunData whose samples can be changed freely (self-training rewrites masks).

    Everything is deep-copied except the image arrays, which training only reads.
    """
    from .pipeline import RunData

    memo = {id(s.image): s.image for s in list(data.train) + list(data.val)}
    return RunData(copy.deepcopy(data.train, memo), copy.deepcopy(data.val, memo), data.prep, list(data.warnings))


def measure_checkpoint(path: Path, val: list, cfg: RunConfig) -> dict:
    """Parameters, inference seconds per validation micrograph and particle metrics of one checkpoint."""
    from .models import count_parameters
    from .picking import Picker, calibrate_threshold
    from .train import resolve_device

    picker = Picker.from_checkpoints([path], cfg.pick, device=resolve_device(cfg.train.device), amp=cfg.train.amp)
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
        from .selftrain import selftrain_run

        selftrain_run(cfg, run_dir, log=log, data=data)
        history = selftrain_history(run_dir, cfg.selftrain.iterations)
        best = best_record(history)
        final_ckpt = run_dir / "final_model.pt"
        best_ckpt = (_phase_folder(run_dir, best.get("phase")) / "best_model.pt") if best else final_ckpt
    else:
        from .pipeline import train_run

        result, _ = train_run(cfg, run_dir, log=log, data=data)
        history = result.history
        best_ckpt, final_ckpt = run_dir / "best_model.pt", run_dir / "model.pt"
    summary = summarize_history(history)
    log("measuring inference time and particle-level metrics")
    best_m = measure_checkpoint(best_ckpt, data.val, cfg)
    same = summary["best_epoch"] is not None and summary["best_epoch"] == summary["final_epoch"]
    final_m = dict(best_m, checkpoint=str(final_ckpt)) if same else measure_checkpoint(final_ckpt, data.val, cfg)
    particle = None
    if best_m["particle"] is not None or final_m["particle"] is not None:
        particle = {"best_checkpoint": best_m["particle"], "final_checkpoint": final_m["particle"]}
    return {"mode": mode, **summary, "parameters": best_m["parameters"],
            "inference_seconds": best_m["inference_seconds"], "particle": particle,
            "checkpoints": {"best": best_ckpt.name if best_ckpt.parent == run_dir else
                            str(best_ckpt.relative_to(run_dir)), "final": final_ckpt.name},
            "history": history, "curve": curve_rows(history, curve_every)}


# --------------------------------------------------------------------------- aggregation


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


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _mean_std(values: list[Any]) -> tuple[float | None, float | None]:
    xs = [x for x in map(_num, values) if x is not None]
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
            if any(_num(v) is not None for v in vals):
                merged[k] = _mean_std(vals)[0]
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
        mean[k], std[k] = _mean_std([p[k] for p in per])
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
            if _num(a) is None or _num(b) is None:
                continue
            diff.setdefault(k, {})[n] = b - a
            if a != 0:
                rel.setdefault(k, {})[n] = 100.0 * (b - a) / abs(a)
    return diff, rel


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):
        return _json_safe(obj.item())
    return obj


# --------------------------------------------------------------------------- the comparison


def _split_info(data) -> dict:
    return {"train": len(data.train), "train_labelled": sum(s.mask is not None for s in data.train),
            "val": len(data.val), "val_names": [s.name for s in data.val]}


def run_comparison(base: RunConfig, variation: Variation, out_dir: str | Path, seeds: list[int] | None = None,
                   curve_every: int = 10, log: Callable[[str], None] = print) -> dict:
    """Train every variant of ``variation`` on ``base`` (per seed), write comparison.json/.md; return the result."""
    from . import __version__
    from .io.atomic import atomic_write_json, atomic_write_text, ensure_out_dir
    from .pipeline import load_run_data, resolve
    from .train import resolve_device

    if curve_every < 1:
        raise InputError(f"--curve-every must be >= 1, got {curve_every}")
    if seeds is not None and variation.path == "train.seed":
        raise InputError("--vary seed and --seeds cannot be combined; vary one or the other")
    seeds = list(seeds) if seeds else [base.train.seed]
    out = ensure_out_dir(out_dir)

    # every config of every seed is built and checked before anything trains
    plan: dict[int, dict[str, RunConfig]] = {}
    for s in seeds:
        b = copy.deepcopy(base)
        b.train.seed = s
        plan[s] = variant_configs(b, variation)
        check_only_differs(plan[s], variation.path)
    raw_keys = differing_keys(plan[seeds[0]])
    names = list(variation.names)
    log(f"compare: {variation.path} = {' vs '.join(names)}; seed(s) {', '.join(map(str, seeds))}; "
        f"config check passed (the variants differ only in {variation.path})")

    # the data: loaded once and split once (seed of the first run); a varied data.* setting: once per variant
    split_seed = seeds[0]
    cache: dict[str | None, Any] = {}

    def data_for(name: str, cfg: RunConfig):
        key = name if variation.section == "data" else None
        if key not in cache:
            c = copy.deepcopy(cfg)
            c.train.seed = split_seed
            cache[key] = load_run_data(c, log)
        return cache[key]

    resolved = {n: resolve(c, data_for(n, c)) for n, c in plan[seeds[0]].items()}
    resolved_flat = {n: _flatten(c.to_dict()) for n, c in resolved.items()}
    derived = {k: {n: resolved_flat[n].get(k) for n in names}
               for k in differing_keys(resolved) if not _within(k, variation.path) and k not in raw_keys}
    for k, vals in derived.items():
        log(f"note: {k} follows from {variation.path}: " + ", ".join(f"{n} {v}" for n, v in vals.items()))

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
            run = {"seed": s, "run_dir": str(run_dir.relative_to(out)), **run}
            runs[name].append(run)

    variants = {n: aggregate_runs(runs[n], curve_every) for n in names}
    diff, rel = differences(variants)
    if variation.section == "data":
        split = {"seed": split_seed, "per_variant": {n: _split_info(cache[n]) for n in names}}
    else:
        split = {"seed": split_seed, **_split_info(cache[None])}
    result = {
        "cryopick_version": __version__,
        "field": variation.path,
        "field_as_given": variation.field,
        "values": list(variation.values),
        "names": names,
        "modes": {n: variation.mode(v) for n, v in zip(names, variation.values)},
        "seeds": seeds,
        "device": str(resolve_device(base.train.device)),
        "split": split,
        "config_check": {"ok": True, "differs_only_in": variation.path, "differing_keys": raw_keys,
                         "derived_differences": derived},
        "configs": {n: c.to_dict() for n, c in resolved.items()},
        "reference": names[0],
        "variants": variants,
        "differences": diff,
        "relative_differences": rel,
        "figures": {},
    }
    try:
        from .report.figures import plot_training_curves
    except ImportError:
        plot_training_curves = None
    if plot_training_curves is not None:
        try:
            plot_training_curves({n: variants[n].get("history") or [] for n in names}, out / "training_curves.png")
            result["figures"]["training_curves"] = "training_curves.png"
        except Exception as e:  # a figure must not cost the comparison
            log(f"warning: training-curve figure not written ({type(e).__name__}: {e})")
    result = _json_safe(result)
    atomic_write_json(out / "comparison.json", result)
    atomic_write_text(out / "comparison.md", render_markdown(result))
    log(f"comparison written to {out / 'comparison.md'} and {out / 'comparison.json'}")
    return result


# --------------------------------------------------------------------------- markdown


def _pct(v: Any) -> str:
    return "n/a" if _num(v) is None else f"{100 * v:.2f}%"


def _dpct(v: Any) -> str:
    return "n/a" if _num(v) is None else f"{100 * v:+.2f}%"


def _rel(a: Any, b: Any) -> str:
    if _num(a) is None or _num(b) is None or a == 0:
        return "n/a"
    return f"{100 * (b - a) / abs(a):+.2f}%"


def _secs(v: Any) -> str:
    if _num(v) is None:
        return "n/a"
    return f"{v:.2f} s" if v >= 1 else f"{1000 * v:.1f} ms"


def _int(v: Any) -> str:
    if _num(v) is None:
        return "n/a"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _signed_int(v: Any) -> str:
    return "n/a" if _num(v) is None else f"{v:+,.0f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _diff_header(names: list[str]) -> list[str]:
    return ["Difference"] if len(names) == 2 else [f"{n} − {names[0]}" for n in names[1:]]


def _fair_rows(result: dict) -> list[list[str]]:
    names, configs, field = result["names"], result["configs"], result["field"]
    flat = {n: _flatten(configs[n]) for n in names}
    seeds = result["seeds"]

    def g(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else _display(v)

    def loss(f: dict) -> str:
        if f["train.loss"] == "combined":
            return f"combined (focal {g(f['train.focal_weight'])} + dice {g(f['train.dice_weight'])})"
        return f["train.loss"]

    def sched(f: dict) -> str:
        if f["train.scheduler"] == "warm-restarts":
            return f"CosineAnnealingWarmRestarts (T0 {f['train.t0']}, T_mult {f['train.t_mult']})"
        return "CosineAnnealingLR"

    def selftrain(f: dict) -> str:
        return (f"{_plural(f['selftrain.iterations'], 'iteration')} x "
                f"{_plural(f['selftrain.retrain_epochs'], 'epoch')}, thresholds "
                f"{g(f['selftrain.positive_threshold'])}/{g(f['selftrain.negative_threshold'])}"
                + (" (dynamic)" if f["selftrain.dynamic_thresholds"] else ""))

    specs: list[tuple[str, list[str], Callable[[dict], str]]] = [
        ("Architecture", ["model.arch", "model.base_features"],
         lambda f: f"{f['model.arch']} (base width {f['model.base_features']})"),
        ("Loss function", ["train.loss", "train.focal_weight", "train.dice_weight", "train.focal_alpha",
                           "train.focal_gamma"], loss),
        ("Optimizer", ["train.lr", "train.weight_decay"],
         lambda f: f"AdamW (lr={g(f['train.lr'])}, weight_decay={g(f['train.weight_decay'])})"),
        ("Learning rate schedule", ["train.scheduler", "train.t0", "train.t_mult", "train.eta_min"], sched),
        ("Training epochs", ["train.epochs"], lambda f: str(f["train.epochs"])),
        ("Batch size", ["train.batch_size"], lambda f: str(f["train.batch_size"])),
        ("Patches per epoch", ["train.patches_per_epoch", "train.patch_size"],
         lambda f: f"{f['train.patches_per_epoch']} of {f['train.patch_size']} px"),
        ("Data augmentation", ["train.augment"],
         lambda f: "CryoEM-specific transforms" if f["train.augment"] else "off"),
        ("Balanced sampling", ["train.balanced_sampling", "train.positive_share"],
         lambda f: f"on ({g(f['train.positive_share'])} with particles)" if f["train.balanced_sampling"] else "off"),
        ("Preprocessing", ["data.downsample", "data.normalize", "data.radius", "data.mask_radius_scale"],
         lambda f: f"downsample {g(f['data.downsample'])}, {f['data.normalize']} normalisation, radius "
                   f"{g(f['data.radius'])} px, mask scale {g(f['data.mask_radius_scale'])}"),
        ("Random seed", ["train.seed"],
         lambda f: ", ".join(map(str, seeds)) + (" (every variant)" if len(seeds) > 1 else "")),
    ]
    if any(m == "selftrain" for m in result["modes"].values()):
        specs.append(("Self-training", ["selftrain.iterations", "selftrain.retrain_epochs",
                                        "selftrain.positive_threshold", "selftrain.negative_threshold",
                                        "selftrain.dynamic_thresholds"], selftrain))
    rows = []
    split = result["split"]
    if "per_variant" in split:
        per = split["per_variant"]
        tr = " / ".join(str(per[n]["train"]) for n in names)
        va = " / ".join(str(per[n]["val"]) for n in names)
        same = all(per[n]["val_names"] == per[names[0]]["val_names"] for n in names)
        note = f"same micrographs, split seed {split['seed']}; " if same else "different split; "
        rows += [["**Training data**", f"{tr} micrographs", f"loaded per variant ({note}preprocessed per variant)"],
                 ["**Validation data**", f"{va} micrographs",
                  "✅ Identical micrographs" if same else "⚠️ Different"]]
    else:
        rows += [["**Training data**", f"{_plural(split['train'], 'micrograph')} ({split['train_labelled']} labelled)",
                  "✅ Identical"],
                 ["**Validation data**", f"{_plural(split['val'], 'micrograph')} (same split, seed {split['seed']})",
                  "✅ Identical"]]
    covered: set[str] = set()
    derived = result["config_check"].get("derived_differences") or {}
    for label, keys, fmt in specs:
        covered.update(keys)
        texts = [fmt(flat[n]) for n in names]
        if any(_within(k, field) for k in keys) and field != SELFTRAIN_MODE:
            rows.append([f"**{label}**", " / ".join(texts), "🔀 **Varied**"])
        elif len(set(texts)) > 1:
            rows.append([f"**{label}**", " / ".join(texts), f"follows from {field}"])
        else:
            rows.append([f"**{label}**", texts[0], "✅ Identical"])
    if field == SELFTRAIN_MODE:
        texts = ["supervised + self-training" if result["modes"][n] == "selftrain" else "supervised" for n in names]
        rows.append(["**Training procedure**", " / ".join(texts), "🔀 **Varied**"])
    elif field not in covered:
        rows.append([f"**{field}**", " / ".join(_display(v) for v in result["values"]), "🔀 **Varied**"])
    for k, vals in derived.items():
        if k not in covered:
            rows.append([f"**{k}**", " / ".join(_display(vals[n]) for n in names), f"follows from {field}"])
    rows.append(["**Device**", result["device"], "✅ Identical"])
    return rows


def _metric_rows(result: dict, part: str) -> list[list[str]]:
    names, variants, diff = result["names"], result["variants"], result["differences"]
    labels = {"f1": "F1 Score", "precision": "Precision", "recall": "Recall", "iou": "IoU", "auc": "AUC"}
    rows = []
    for m in ("f1", "precision", "recall", "iou", "auc"):
        key = f"{part}_{m}"
        vals = [variants[n]["metrics"].get(key) for n in names]
        nums = [_num(v) for v in vals]
        top = max((x for x in nums if x is not None), default=None)
        winner = top is not None and sum(x == top for x in nums) == 1
        cells = [f"**{_pct(v)}**" if winner and _num(v) == top else _pct(v) for v in vals]
        rows.append([f"**{labels[m]}**", *cells, *[_dpct(diff.get(key, {}).get(n)) for n in names[1:]]])
    return rows


def _history_table(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        epoch = str(r["epoch"])
        if r.get("phase") and r["phase"] != "supervised":
            epoch += f" ({r['phase']}, epoch {r.get('phase_epoch')})"
        cells = [epoch, _pct(r.get("precision")), _pct(r.get("recall")), _pct(r.get("f1")), _pct(r.get("iou"))]
        out.append([f"**{c}**" for c in cells] if r.get("best") else cells)
    return _table(["Epoch", "Precision", "Recall", "F1 Score", "IoU"], out)


def render_markdown(result: dict) -> str:
    """comparison.md from a comparison result (the content of comparison.json)."""
    names, variants, field, seeds = result["names"], result["variants"], result["field"], result["seeds"]
    several = len(seeds) > 1
    first = names[0]
    vs = " vs ".join(names)
    L: list[str] = [f"# Fair Comparison: {vs}", ""]
    what = ("supervised training vs self-training" if field == SELFTRAIN_MODE
            else f"`{field}` = " + ", ".join(f"`{_display(v)}`" for v in result["values"]))
    L += ["## Experiment Design", "",
          f"Every variant trains under one shared configuration that differs only in {what}: the same "
          f"data split, the same seed{'s' if several else ''} ({', '.join(map(str, seeds))}) and every other "
          "setting identical. The configs were diffed before training "
          f"(config check: {'passed' if result['config_check']['ok'] else 'FAILED'}, "
          f"differs only in `{result['config_check']['differs_only_in']}`).", ""]
    L += _table(["Factor", "Configuration", "Status"], _fair_rows(result)) + [""]

    dh = _diff_header(names)
    agg = f" (mean over {len(seeds)} seeds)" if several else ""
    L += ["## Results", "", f"### Performance Comparison{agg}", "",
          "Pixel metrics (threshold 0.5) on the validation micrographs at each variant's best epoch "
          "(highest validation F1).", ""]
    rows = _metric_rows(result, "best")
    m = {n: variants[n]["metrics"] for n in names}
    diff = result["differences"]

    def rel_cells(key: str) -> list[str]:
        return [_rel(m[first].get(key), m[n].get(key)) for n in names[1:]]

    rows.append(["**Best Epoch**", *[_int(m[n]["best_epoch"]) for n in names], *["-" for _ in names[1:]]])
    rows.append(["**Parameters**", *[_int(m[n]["parameters"]) for n in names],
                 *[f"{_signed_int(diff.get('parameters', {}).get(n))} ({c})"
                   for n, c in zip(names[1:], rel_cells("parameters"))]])
    rows.append(["**Time per epoch** (training)", *[_secs(m[n]["seconds_per_epoch"]) for n in names],
                 *rel_cells("seconds_per_epoch")])
    rows.append(["**Inference time** (per validation micrograph)", *[_secs(m[n]["inference_seconds"]) for n in names],
                 *rel_cells("inference_seconds")])
    for which, label in (("best", "best checkpoint"), ("final", "final checkpoint")):
        for k, metric in (("f1", "F1"), ("ap", "AP")):
            key = f"particle_{which}_{k}"
            rows.append([f"**Particle {metric}** ({label})", *[_pct(m[n].get(key)) for n in names],
                         *[_dpct(diff.get(key, {}).get(n)) for n in names[1:]]])
    L += _table(["Metric", *names, *dh], rows) + [""]
    L += ["Differences of percentages are in percentage points; parameters and times as relative change. "
          "Particle F1 is the best F1 over score thresholds (the calibrated pick threshold) and AP the "
          "average precision, on the validation micrographs.", ""]

    final_epochs = {(v.get("final") or {}).get("epoch") for v in variants.values()}
    ep = f" (epoch {final_epochs.pop()})" if len(final_epochs) == 1 and None not in final_epochs else ""
    L += [f"### Final Epoch{ep}{agg}", ""]
    L += _table(["Metric", *names, *dh], _metric_rows(result, "final")) + [""]

    if several:
        L += [f"### Across Seeds (mean ± std over {len(seeds)} seeds)", ""]
        rows = []
        for key, label, fmt in (("best_f1", "Best F1", "pct"), ("best_precision", "Precision (best epoch)", "pct"),
                                ("best_recall", "Recall (best epoch)", "pct"), ("best_iou", "IoU (best epoch)", "pct"),
                                ("best_auc", "AUC (best epoch)", "pct"), ("final_f1", "Final F1", "pct"),
                                ("particle_best_f1", "Particle F1", "pct"), ("particle_best_ap", "Particle AP", "pct"),
                                ("best_epoch", "Best epoch", "num"),
                                ("seconds_per_epoch", "Time per epoch (s)", "num")):
            cells = []
            for n in names:
                mu, sd = variants[n]["mean"].get(key), variants[n]["std"].get(key)
                if _num(mu) is None:
                    cells.append("n/a")
                elif fmt == "pct":
                    cells.append(f"{100 * mu:.2f} ± {100 * sd:.2f}%" if _num(sd) is not None else _pct(mu))
                else:
                    cells.append(f"{mu:.2f} ± {sd:.2f}" if _num(sd) is not None else f"{mu:.2f}")
            dcells = []
            for n in names[1:]:
                d = diff.get(key, {}).get(n)
                dcells.append("n/a" if _num(d) is None else (_dpct(d) if fmt == "pct" else f"{d:+.2f}"))
            rows.append([f"**{label}**", *cells, *dcells])
        L += _table(["Metric", *names, *dh], rows) + [""]
        L += ["Best validation F1 of every run:", ""]
        rows = []
        for i, s in enumerate(seeds):
            vals = [key_metrics(variants[n]["runs"][i])["best_f1"] for n in names]
            rows.append([str(s), *[_pct(v) for v in vals],
                         *[_dpct(v - vals[0]) if _num(v) is not None and _num(vals[0]) is not None else "n/a"
                           for v in vals[1:]]])
        L += _table(["Seed", *names, *dh], rows) + [""]
        notes = []
        for n in names[1:]:
            per = [key_metrics(a)["best_f1"] for a in variants[n]["runs"]]
            ref = [key_metrics(a)["best_f1"] for a in variants[first]["runs"]]
            pairs = [(b - a) for a, b in zip(ref, per) if _num(a) is not None and _num(b) is not None]
            if pairs:
                mu, sd = _mean_std(pairs)
                wins = sum(d > 0 for d in pairs)
                spread = f" ± {100 * sd:.2f}" if sd is not None else ""
                notes.append(f"{n} minus {first}: {100 * mu:+.2f}{spread} points of best F1 "
                             f"({n} higher in {wins} of {len(pairs)} seeds)")
        L += (["; ".join(notes) + ".", ""] if notes else []) + [
              f"Mean ± sample standard deviation over {len(seeds)} seeds on the same data split. A difference "
              "smaller than the seed-to-seed standard deviation is not significant, and no single run shows one: "
              "one run per variant cannot separate the effect of the varied setting from the luck of the seed.", ""]
    else:
        L += [f"**Significance**: each variant was trained once (seed {seeds[0]}). A single run is not significant: "
              "the seed alone moves these metrics, so a difference this size may not repeat. Rerun with "
              "`--seeds 42,43,44` to measure the seed-to-seed spread (mean ± std).", ""]

    L += ["## Training Curves", ""]
    if result.get("figures", {}).get("training_curves"):
        L += [f"![training curves]({result['figures']['training_curves']})", ""]
    for n in names:
        v = variants[n]
        runs = v["runs"] if several else [v]
        for run in runs:
            title = f"### {n} Performance Over Time" + (f" (seed {run['seed']})" if several else "")
            L += [title, ""]
            if run.get("curve"):
                L += _history_table(run["curve"]) + [""]
                L += [f"**Best Performance**: Epoch {run.get('best_epoch')}", ""]
            else:
                L += ["No validation records (no labelled validation micrographs).", ""]
            L += [f"Run directory: `{run.get('run_dir')}`", ""]
    return "\n".join(L).rstrip() + "\n"
