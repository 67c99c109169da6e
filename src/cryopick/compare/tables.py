"""The tables of comparison.md: number formatting, the fairness table and the metric rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..losses import REGISTRY as LOSS_REGISTRY
from ..losses import CONFIG_FIELDS as LOSS_FIELDS
from ..schedulers import SCHEDULERS
from .fairness import flatten, within
from .fields import SELFTRAIN_MODE, display
from .history import num


def pct(v: Any) -> str:
    return "n/a" if num(v) is None else f"{100 * v:.2f}%"


def dpct(v: Any) -> str:
    return "n/a" if num(v) is None else f"{100 * v:+.2f}%"


def rel(a: Any, b: Any) -> str:
    if num(a) is None or num(b) is None or a == 0:
        return "n/a"
    return f"{100 * (b - a) / abs(a):+.2f}%"


def secs(v: Any) -> str:
    if num(v) is None:
        return "n/a"
    return f"{v:.2f} s" if v >= 1 else f"{1000 * v:.1f} ms"


def fmt_int(v: Any) -> str:
    if num(v) is None:
        return "n/a"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def signed_int(v: Any) -> str:
    return "n/a" if num(v) is None else f"{v:+,.0f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def diff_header(names: list[str]) -> list[str]:
    return ["Difference"] if len(names) == 2 else [f"{n} − {names[0]}" for n in names[1:]]


def _g(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else display(v)


def _section(f: dict, section: str) -> dict[str, Any]:
    """One section of a flattened config as a plain dict (``train.lr`` -> ``lr``)."""
    prefix = section + "."
    return {k[len(prefix):]: v for k, v in f.items() if k.startswith(prefix)}


def _loss(f: dict) -> str:
    spec = LOSS_REGISTRY.get(f["train.loss"])  # "auto" when not resolved
    if spec is None:
        return f["train.loss"]
    return spec.label({k: f[f"train.{field}"] for k, field in LOSS_FIELDS.items()})


def _sched(f: dict) -> str:
    spec = SCHEDULERS.get(f["train.scheduler"])
    return spec.describe(_section(f, "train")) if spec is not None else f["train.scheduler"]


def _selftrain(f: dict) -> str:
    return (f"{_plural(f['selftrain.iterations'], 'iteration')} x "
            f"{_plural(f['selftrain.retrain_epochs'], 'epoch')}, thresholds "
            f"{_g(f['selftrain.positive_threshold'])}/{_g(f['selftrain.negative_threshold'])}"
            + (" (dynamic)" if f["selftrain.dynamic_thresholds"] else ""))


FactorSpec = tuple[str, list[str], Callable[[dict], str]]  # table label, the config keys it shows, its text
FACTORS: list[FactorSpec] = [
    ("Architecture", ["model.arch", "model.base_features"],
     lambda f: f"{f['model.arch']} (base width {f['model.base_features']})"),
    ("Loss function", ["train.loss", "train.focal_weight", "train.dice_weight", "train.focal_alpha",
                       "train.focal_gamma"], _loss),
    ("Optimizer", ["train.lr", "train.weight_decay"],
     lambda f: f"AdamW (lr={_g(f['train.lr'])}, weight_decay={_g(f['train.weight_decay'])})"),
    ("Learning rate schedule", ["train.scheduler", "train.t0", "train.t_mult", "train.eta_min"], _sched),
    ("Training epochs", ["train.epochs"], lambda f: str(f["train.epochs"])),
    ("Batch size", ["train.batch_size"], lambda f: str(f["train.batch_size"])),
    ("Patches per epoch", ["train.patches_per_epoch", "train.patch_size"],
     lambda f: f"{f['train.patches_per_epoch']} of {f['train.patch_size']} px"),
    ("Data augmentation", ["train.augment"],
     lambda f: "CryoEM-specific transforms" if f["train.augment"] else "off"),
    ("Balanced sampling", ["train.balanced_sampling", "train.positive_share"],
     lambda f: f"on ({_g(f['train.positive_share'])} with particles)" if f["train.balanced_sampling"] else "off"),
    ("Preprocessing", ["data.downsample", "data.normalize", "data.radius", "data.mask_radius_scale"],
     lambda f: f"downsample {_g(f['data.downsample'])}, {f['data.normalize']} normalisation, radius "
               f"{_g(f['data.radius'])} px, mask scale {_g(f['data.mask_radius_scale'])}"),
]
SELFTRAIN_FACTOR: FactorSpec = (
    "Self-training", ["selftrain.iterations", "selftrain.retrain_epochs", "selftrain.positive_threshold",
                      "selftrain.negative_threshold", "selftrain.dynamic_thresholds"], _selftrain)


def _factors(result: dict) -> list[FactorSpec]:
    seeds = result["seeds"]
    specs = FACTORS + [("Random seed", ["train.seed"],
                        lambda f: ", ".join(map(str, seeds)) + (" (every variant)" if len(seeds) > 1 else ""))]
    if any(m == "selftrain" for m in result["modes"].values()):
        specs.append(SELFTRAIN_FACTOR)
    return specs


def _split_rows(result: dict) -> list[list[str]]:
    names, split = result["names"], result["split"]
    if "per_variant" not in split:
        return [["**Training data**", f"{_plural(split['train'], 'micrograph')} ({split['train_labelled']} labelled)",
                 "✅ Identical"],
                ["**Validation data**", f"{_plural(split['val'], 'micrograph')} (same split, seed {split['seed']})",
                 "✅ Identical"]]
    per = split["per_variant"]
    tr = " / ".join(str(per[n]["train"]) for n in names)
    va = " / ".join(str(per[n]["val"]) for n in names)
    same = all(per[n]["val_names"] == per[names[0]]["val_names"] for n in names)
    note = f"same micrographs, split seed {split['seed']}; " if same else "different split; "
    return [["**Training data**", f"{tr} micrographs", f"loaded per variant ({note}preprocessed per variant)"],
            ["**Validation data**", f"{va} micrographs", "✅ Identical micrographs" if same else "⚠️ Different"]]


def fair_rows(result: dict) -> list[list[str]]:
    """The rows of the experiment-design table: every factor, identical, varied or following from the varied one."""
    names, field = result["names"], result["field"]
    flat = {n: flatten(result["configs"][n]) for n in names}
    rows = _split_rows(result)
    covered: set[str] = set()
    for label, keys, fmt in _factors(result):
        covered.update(keys)
        texts = [fmt(flat[n]) for n in names]
        if any(within(k, field) for k in keys) and field != SELFTRAIN_MODE:
            rows.append([f"**{label}**", " / ".join(texts), "🔀 **Varied**"])
        elif len(set(texts)) > 1:
            rows.append([f"**{label}**", " / ".join(texts), f"follows from {field}"])
        else:
            rows.append([f"**{label}**", texts[0], "✅ Identical"])
    if field == SELFTRAIN_MODE:
        texts = ["supervised + self-training" if result["modes"][n] == "selftrain" else "supervised" for n in names]
        rows.append(["**Training procedure**", " / ".join(texts), "🔀 **Varied**"])
    elif field not in covered:
        rows.append([f"**{field}**", " / ".join(display(v) for v in result["values"]), "🔀 **Varied**"])
    for k, vals in (result["config_check"].get("derived_differences") or {}).items():
        if k not in covered:
            rows.append([f"**{k}**", " / ".join(display(vals[n]) for n in names), f"follows from {field}"])
    rows.append(["**Device**", result["device"], "✅ Identical"])
    return rows


def metric_rows(result: dict, part: str) -> list[list[str]]:
    names, variants, diff = result["names"], result["variants"], result["differences"]
    labels = {"f1": "F1 Score", "precision": "Precision", "recall": "Recall", "iou": "IoU", "auc": "AUC"}
    rows = []
    for m in ("f1", "precision", "recall", "iou", "auc"):
        key = f"{part}_{m}"
        vals = [variants[n]["metrics"].get(key) for n in names]
        nums = [num(v) for v in vals]
        top = max((x for x in nums if x is not None), default=None)
        winner = top is not None and sum(x == top for x in nums) == 1
        cells = [f"**{pct(v)}**" if winner and num(v) == top else pct(v) for v in vals]
        rows.append([f"**{labels[m]}**", *cells, *[dpct(diff.get(key, {}).get(n)) for n in names[1:]]])
    return rows


def history_table(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        epoch = str(r["epoch"])
        if r.get("phase") and r["phase"] != "supervised":
            epoch += f" ({r['phase']}, epoch {r.get('phase_epoch')})"
        cells = [epoch, pct(r.get("precision")), pct(r.get("recall")), pct(r.get("f1")), pct(r.get("iou"))]
        out.append([f"**{c}**" for c in cells] if r.get("best") else cells)
    return table(["Epoch", "Precision", "Recall", "F1 Score", "IoU"], out)

