"""The comparison section: the markdown report, the variant table, differences, curves."""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ... import runlayout as layout
from .. import figures
from ..figures import _num
from ..summary import PIXEL_VS_PARTICLE
from .markdown import markdown_to_html
from .page import (
    Section,
    _Context,
    _e,
    _fig,
    _flatten,
    _fmt,
    _img_tag,
    _kv_table,
    _metric,
    _note,
    _png_for_embedding,
    _read_json,
    _sources,
    _table,
)


def _mean_std(v: Mapping, key: str, fmt: Callable[[Any], str]) -> str:
    """'0.8123' or, for a several-seed aggregate, '0.8123 ± 0.0100'."""
    metrics = v.get("metrics") if isinstance(v.get("metrics"), Mapping) else {}
    std = v.get("std") if isinstance(v.get("std"), Mapping) else {}
    text = fmt(metrics.get(key))
    if math.isfinite(_num(std.get(key))):
        text += f" ± {fmt(std.get(key))}"
    return text


def _variant_metrics(v: Mapping) -> dict:
    """The flat numbers of a comparison variant: its ``metrics`` dict, or derived from best/final/particle."""
    if isinstance(v.get("metrics"), Mapping):
        return dict(v["metrics"])
    out: dict[str, Any] = {}
    for part in ("best", "final"):
        rec = v.get(part) if isinstance(v.get(part), Mapping) else {}
        for m in ("precision", "recall", "f1", "iou", "auc"):
            out[f"{part}_{m}"] = rec.get(m)
    for k in ("best_epoch", "parameters", "seconds_per_epoch", "inference_seconds"):
        out[k] = v.get(k)
    part = v.get("particle") if isinstance(v.get("particle"), Mapping) else {}
    if isinstance(part.get("best_checkpoint"), Mapping):
        part = part["best_checkpoint"]
    out["particle_best_f1"] = part.get("best_f1", part.get("f1"))
    out["particle_best_ap"] = part.get("ap")
    return out


COMPARE_COLUMNS = [("best_f1", "Best val F1", _metric), ("best_epoch", "Best epoch", _fmt),
                   ("best_precision", "Precision", _metric), ("best_recall", "Recall", _metric),
                   ("best_iou", "IoU", _metric), ("best_auc", "AUC", _metric), ("final_f1", "Final val F1", _metric),
                   ("particle_best_f1", "Particle F1", _metric), ("particle_best_ap", "Particle AP", _metric),
                   ("parameters", "Parameters", _fmt), ("seconds_per_epoch", "s / epoch", lambda x: _fmt(x, 3)),
                   ("inference_seconds", "Inference s", lambda x: _fmt(x, 3))]


def _comparison_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    sec = Section(ctx.new_id(f"{p}comparison"), title)
    jpath, mpath = d / layout.COMPARISON, d / "comparison.md"
    sec.body = _sources([x for x in (jpath, mpath) if x.is_file()], ctx)
    data = _read_json(jpath) if jpath.is_file() else None
    if data is not None and not isinstance(data, Mapping):
        sec.body += _note("comparison.json is not a JSON object.", "warn")
        data = None
    embedded: list[str] = []

    def image(alt: str, src: str) -> str:
        target = (d / urllib.parse.unquote(src)) if "://" not in src else None
        png = _png_for_embedding(target) if target is not None and target.is_file() else None
        if png is None:
            return _e(alt or src)
        ctx.used_files.add(target.resolve())
        embedded.append(src)
        return _img_tag(png, alt or src)

    if mpath.is_file():
        md_title = "Comparison report (comparison.md)"
        try:
            text = mpath.read_text(encoding="utf-8")
            first = text.lstrip().split("\n", 1)
            if first[0].startswith("# "):  # the document's title becomes the section's
                md_title = re.sub(r"[*`]", "", first[0][2:]).strip() or md_title
                text = first[1] if len(first) > 1 else ""
            md = markdown_to_html(text, image)
        except (OSError, UnicodeDecodeError) as exc:
            md = _note(f"comparison.md: cannot read ({exc})", "warn")
        sec.children.append(Section(ctx.new_id(f"{p}comparison-md"), md_title,
                                    f'<p class="caption">{_e(PIXEL_VS_PARTICLE)}</p><div class="md">{md}</div>'))

    variants = data.get("variants") if data is not None and isinstance(data.get("variants"), Mapping) else {}
    variants = {str(k): v for k, v in variants.items() if isinstance(v, Mapping)}
    if variants and not mpath.is_file():  # comparison.md holds these tables already
        intro = f"<p>Compared field: <code>{_e(data.get('field'))}</code></p>" if data.get("field") else ""
        flat = {n: _variant_metrics(v) for n, v in variants.items()}
        rows, f1s = [], []
        for n, v in variants.items():
            vv = {"metrics": flat[n], "std": v.get("std")}
            rows.append([n] + [_mean_std(vv, k, fmt) for k, _, fmt in COMPARE_COLUMNS])
            f1s.append(_num(flat[n].get("best_f1")))
        finite = [f for f in f1s if math.isfinite(f)]
        bold = [bool(finite) and f == max(finite) for f in f1s]
        table = _table(["Variant"] + [label for _, label, _ in COMPARE_COLUMNS], rows, bold=bold)
        sec.children.append(Section(ctx.new_id(f"{p}comparison-table"), "Variants",
                                    intro + '<p class="caption">Validation pixel metrics at the best epoch; particle '
                                    "metrics on the validation micrographs. Best validation F1 in bold. "
                                    f"{_e(PIXEL_VS_PARTICLE)}</p>" + table))
        extra = []
        diffs = data.get("differences")
        if isinstance(diffs, Mapping) and diffs:
            if all(isinstance(x, Mapping) for x in diffs.values()):
                cols = list(dict.fromkeys(k for x in diffs.values() for k in x))
                ref = data.get("reference")
                extra.append(f"<h4>Differences{' to ' + _e(ref) if ref else ''}</h4>"
                             + _table(["Metric"] + cols, [[k] + [_fmt(x.get(c)) for c in cols]
                                                          for k, x in diffs.items()]))
            else:
                extra.append("<h4>Differences</h4>" + _kv_table(_flatten(diffs)))
        seeds = data.get("seeds")
        if isinstance(seeds, list) and seeds:
            if all(isinstance(x, Mapping) for x in seeds):
                cols = list(dict.fromkeys(k for x in seeds for k in x))
                extra.append("<h4>Seeds</h4>" + _table(cols, [[_fmt(x.get(c)) for c in cols] for x in seeds]))
            else:
                extra.append(f"<h4>Seeds</h4><p>{_e(_fmt(seeds))}</p>")
        if extra:
            sec.children.append(Section(ctx.new_id(f"{p}comparison-details"), "Differences and seeds", "".join(extra)))

    histories = {n: v.get("history") for n, v in variants.items()
                 if isinstance(v.get("history"), list) and v.get("history")}
    if histories and not embedded:
        ctx.used_files.add((d / "training_curves.png").resolve())
        sec.children.append(Section(ctx.new_id(f"{p}comparison-curves"), "Training curves",
                                    _fig(figures.training_curves_figure(histories), "overlaid training curves")))
    return sec
