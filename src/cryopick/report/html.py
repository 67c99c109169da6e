"""One self-contained HTML page per run directory.

:func:`build_report` looks at the files in a run directory and renders a section for every kind of
run it finds there (a directory may hold several), then does the same for the sub-runs one or
two folders down (the demo's sub-runs, self-training's ``supervised/`` and ``iteration_K/``):

==========================  ===================================================================
files                       section
==========================  ===================================================================
``metrics.json`` (a list),  training: configuration, training curves, metrics every N epochs
``config.yaml``,            (best row bold), summary
``train_summary.json``
``training_summary.json``   self-training: per-iteration coverage / validation table, figure,
                            warnings
``pick_summary.json``       picking: totals, picks per micrograph, output files
``metrics.json`` (a dict    evaluation: overall particle metrics, PR curve (from the JSON or
with ``overall``)           ``pr_curve.csv``), per-micrograph table
``comparison.json`` /       comparison: variant table, differences, overlaid training curves,
``comparison.md``           the markdown
``*.png``, ``figures/*.png``  figures, captioned with the file name
==========================  ===================================================================

The page opens with a summary (:mod:`.summary`: what ran, the picks and their threshold, particle
F1 / AP, the model to use and the next command); sub-runs follow in the order of the work.
The page works offline: figures are PNG data URIs (large, noisy ones JPEG), tables are HTML, styles are inline, there is
no script and no external resource. The only links are in-page anchors and relative links to
files of the run that exist. Every section has an ``id`` (listed in the table of contents).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import functools
import html
import io
import json
import math
import os
import re
import statistics
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryopick import __version__
from cryopick.errors import InputError
from cryopick.io.atomic import atomic_write_text

from . import figures
from .figures import _num
from .summary import PIXEL_VS_PARTICLE, candidates_note, compact_image, summary_section, work_order

__all__ = ["Section", "build_report", "write_report", "render_report", "find_runs", "run_kinds", "markdown_to_html"]

MAX_DEPTH = 2  # sub-runs are looked for this many folders down
MAX_TABLE_ROWS = 200
MAX_EMBED_BYTES = 3_000_000  # larger PNGs are downscaled before embedding
SKIP_DIRS = {"figures", "maps", "__pycache__"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- page model


@dataclass
class Section:
    id: str
    title: str
    body: str = ""
    children: list["Section"] = field(default_factory=list)
    collapsed: bool = False  # rendered inside a closed <details>

    def ids(self) -> list[str]:
        return [self.id] + [i for c in self.children for i in c.ids()]


class _Context:
    """What the renderers share: where the page goes (for relative links) and the ids in use."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.ids: set[str] = set()
        self.used_files: set[Path] = set()

    def new_id(self, base: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "section"
        sid, n = slug, 2
        while sid in self.ids:
            sid, n = f"{slug}-{n}", n + 1
        self.ids.add(sid)
        return sid

    def link(self, path: Path, text: str | None = None) -> str:
        """An ``<a>`` to ``path`` relative to the page, or plain text when it does not exist."""
        label = _e(text if text is not None else path.name)
        try:
            if not path.exists():
                return label
            rel = os.path.relpath(path.resolve(), self.out_dir.resolve())
        except (OSError, ValueError):  # another drive (Windows) or unreadable
            return label
        href = urllib.parse.quote(Path(rel).as_posix())
        return f'<a href="{href}">{label}</a>'


# --------------------------------------------------------------------------- formatting


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any, digits: int = 4) -> str:
    """A value for a table cell (not yet escaped)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—" if math.isnan(v) else str(v)
        a = abs(v)
        if a == 0:
            return "0"
        if a < 1e-3 or a >= 1e6:
            return f"{v:.3g}"
        if v.is_integer():
            return f"{int(v):,}" if a >= 10_000 else str(int(v))
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        items = [_fmt(x, digits) for x in v[:8]]
        more = f", … (+{len(v) - 8} more)" if len(v) > 8 else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(v, Mapping):
        return json.dumps(v, default=str)[:300]
    return str(v)


def _metric(v: Any, digits: int = 4) -> str:
    x = _num(v)
    return f"{x:.{digits}f}" if math.isfinite(x) else "—"


def _pct(v: Any) -> str:
    x = _num(v)
    return f"{x:.2f}" if math.isfinite(x) else "—"


def _pct100(v: Any) -> str:
    """A fraction as a percentage with two decimals (the seeds' tables)."""
    x = _num(v)
    return f"{100 * x:.2f}%" if math.isfinite(x) else "—"


def _kv_table(rows: Sequence[tuple[str, Any]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v if isinstance(v, _Raw) else _e(_fmt(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="{cls}"><tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], bold: Sequence[bool] | None = None,
           cls: str = "data", numeric_from: int = 1) -> str:
    """An HTML table; cells are escaped unless they are :class:`_Raw`; ``bold[i]`` marks row i."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    out = []
    for i, row in enumerate(rows):
        cells = []
        for j, c in enumerate(row):
            text = c if isinstance(c, _Raw) else _e(c if isinstance(c, str) else _fmt(c))
            cells.append(f'<td class="num">{text}</td>' if j >= numeric_from else f"<td>{text}</td>")
        attr = ' class="best"' if bold and i < len(bold) and bold[i] else ""
        out.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(out)}</tbody></table>'


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v))
    return rows


def _img_tag(png: bytes, alt: str, caption: str | None = None) -> str:
    data, mime = compact_image(png)  # a large, noisy PNG (a micrograph) as JPEG: the page stays small
    src = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{src}" alt="{_e(alt)}">{cap}</figure>'


def _fig(fig, alt: str, caption: str | None = None) -> str:
    return _img_tag(figures.figure_png_bytes(fig), alt, caption)


def _note(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{_e(text)}</p>'


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read ({exc})") from None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read ({exc})") from None


def _metrics_kind(path: Path) -> str | None:
    """'training' for a list of epoch records, 'evaluation' for a dict with 'overall'."""
    try:
        data = _read_json(path)
    except ValueError:
        return "training"  # reported as unreadable in the training section
    if isinstance(data, list):
        return "training"
    if isinstance(data, Mapping) and "overall" in data:
        return "evaluation"
    if isinstance(data, Mapping):
        return "training" if "history" in data else None
    return None


def _pngs(d: Path) -> list[Path]:
    found = [p for p in d.glob("*.png") if p.is_file()]
    if (d / "figures").is_dir():
        found += [p for p in (d / "figures").rglob("*.png") if p.is_file()]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(d).as_posix()))


def run_kinds(d: str | os.PathLike[str]) -> list[str]:
    """The kinds of run whose files are in folder ``d`` (not looking into sub-runs), in page order."""
    d = Path(d)
    kinds = []
    metrics = d / "metrics.json"
    mkind = _metrics_kind(metrics) if metrics.is_file() else None
    if (d / "comparison.json").is_file() or (d / "comparison.md").is_file():
        kinds.append("comparison")
    if (d / "training_summary.json").is_file() or (
            mkind is None and ((d / "supervised").is_dir() or (d / "baseline_model.pt").is_file())):
        kinds.append("selftrain")  # without training_summary.json: in progress
    pick = (d / "pick_summary.json").is_file()
    if mkind == "training" or (mkind is None and (d / "train_summary.json").is_file()):
        kinds.append("training")
    elif (d / "config.yaml").is_file() and not kinds and not pick and mkind is None:
        kinds.append("training")  # started, no epoch finished yet
    if pick:
        kinds.append("pick")
    if mkind == "evaluation":
        kinds.append("evaluation")
    if _pngs(d):
        kinds.append("figures")
    return kinds


def _subdirs(d: Path) -> list[Path]:
    try:
        subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP_DIRS]
    except OSError:
        return []
    # self-training's supervised phase before its iterations
    # otherwise in the order of the work (training, self-training, picking, evaluation, comparison)
    return sorted(subs, key=lambda p: (work_order(p, run_kinds)[:2], _natural_key(p.name)))


def find_runs(d: str | os.PathLike[str], depth: int = MAX_DEPTH) -> list[Path]:
    """``d`` and its sub-folders (up to ``depth`` levels) that hold a run, parents first."""
    d = Path(d)
    out = [d] if run_kinds(d) else []
    if depth > 0:
        for sub in _subdirs(d):
            out += find_runs(sub, depth - 1)
    return out


# --------------------------------------------------------------------------- training


KEY_SETTINGS = [("model", "arch"), ("model", "base_features"), ("train", "epochs"), ("train", "batch_size"),
                ("train", "patch_size"), ("train", "lr"), ("train", "scheduler"), ("train", "loss"),
                ("train", "augment"), ("train", "balanced_sampling"), ("train", "seed"), ("train", "device"),
                ("data", "radius"), ("data", "downsample"), ("data", "normalize")]


def _config_tables(cfg: Mapping, sections: Sequence[str] | None = None, key_settings=KEY_SETTINGS) -> str:
    """Version and command, the key settings as one table, every section in a collapsed block."""
    top = [(k, v) for k, v in cfg.items() if not isinstance(v, Mapping)]
    key = [(f"{a}.{b}", cfg[a][b]) for a, b in key_settings
           if isinstance(cfg.get(a), Mapping) and b in cfg[a]]
    parts = [_kv_table(top + key)] if top or key else []
    blocks = []
    for name, sec in cfg.items():
        if isinstance(sec, Mapping) and (sections is None or name in sections):
            rows = _flatten(sec)
            blocks.append(f'<div class="cfg"><h4>{_e(name)}</h4>{_kv_table(rows) if rows else _note("(empty)")}</div>')
    if blocks:
        parts.append(f'<details><summary>All settings</summary><div class="grid">{"".join(blocks)}</div></details>')
    return "".join(parts)


def _epoch_rows(history: list[dict], best_epoch: Any) -> tuple[list[dict], int]:
    """The records shown in the metric table (every N epochs, plus first, best and last) and N.

    N is a round multiple of the validation cadence chosen so that about 12 rows or fewer remain.
    """
    validated = [r for r in history if math.isfinite(_num(r.get("f1")))]
    records = validated or history
    if len(records) <= 15:
        return records, 1
    epochs = [int(e) for e in (_num(r.get("epoch")) for r in records[:-1]) if math.isfinite(e) and e > 0]
    cadence = functools.reduce(math.gcd, epochs) if epochs else 1
    step = cadence
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10_000):
        step = s * cadence
        if sum(1 for e in epochs if e % step == 0) <= 12:
            break
    keep = []
    for i, r in enumerate(records):
        ep = _num(r.get("epoch"))
        if i == 0 or i == len(records) - 1 or (math.isfinite(ep) and ep % step == 0) or ep == _num(best_epoch):
            keep.append(r)
    return keep, step


def _best_epoch(history: list[dict], summary: Mapping | None) -> Any:
    if summary and summary.get("best_epoch") is not None and any(math.isfinite(_num(r.get("f1"))) for r in history):
        return summary.get("best_epoch")
    best, best_f1 = None, -math.inf
    for r in history:
        f = _num(r.get("f1"))
        if math.isfinite(f) and f > best_f1:
            best, best_f1 = r.get("epoch"), f
    return best


def _training_sections(d: Path, p: str, ctx: _Context, title: str) -> Section:
    sec = Section(ctx.new_id(f"{p}training"), title)
    notes, sources = [], []
    history: list[dict] = []
    summary: Mapping | None = None
    cfg: Mapping | None = None
    if (d / "metrics.json").is_file():
        sources.append(d / "metrics.json")
        try:
            data = _read_json(d / "metrics.json")
            history = [r for r in (data if isinstance(data, list) else data.get("history", [])) if isinstance(r, Mapping)]
        except ValueError as exc:
            notes.append(str(exc))
    if (d / "train_summary.json").is_file():
        sources.append(d / "train_summary.json")
        try:
            summary = _read_json(d / "train_summary.json")
            if not isinstance(summary, Mapping):
                notes.append("train_summary.json: not a JSON object")
                summary = None
        except ValueError as exc:
            notes.append(str(exc))
    if (d / "config.yaml").is_file():
        sources.append(d / "config.yaml")
        try:
            cfg = _read_yaml(d / "config.yaml")
            if not isinstance(cfg, Mapping):
                notes.append("config.yaml: not a mapping")
                cfg = None
        except ValueError as exc:
            notes.append(str(exc))
    sec.body = (_sources(sources, ctx) + "".join(_note(n, "warn") for n in notes))

    if cfg is not None:
        sec.children.append(Section(ctx.new_id(f"{p}training-config"), "Configuration", _config_tables(cfg)))

    best_epoch = _best_epoch(history, summary)
    if history:
        sec.children.append(Section(ctx.new_id(f"{p}training-curves"), "Training curves",
                                    _fig(figures.training_curves_figure(history), "training curves",
                                         "Training loss (left) and validation pixel metrics (right); the dotted "
                                         "line marks the epoch of the best validation F1.")))
        rows, step = _epoch_rows(history, best_epoch)
        validated = any(math.isfinite(_num(r.get("f1"))) for r in history)
        table = _table(["Epoch", "Train loss", "Precision", "Recall", "F1", "IoU", "AUC"],
                       [[_fmt(r.get("epoch")), _metric(r.get("train_loss")), _pct100(r.get("precision")),
                         _pct100(r.get("recall")), _pct100(r.get("f1")), _pct100(r.get("iou")), _pct100(r.get("auc"))]
                        for r in rows],
                       bold=[validated and r.get("epoch") == best_epoch for r in rows])
        what = "validated epochs" if validated else "epochs (no validation recorded)"
        every = f"every {step} epochs, plus the first, best and last" if step > 1 else "all " + what
        sec.children.append(Section(ctx.new_id(f"{p}training-table"), "Performance over time",
                                    f'<p class="caption">Validation pixel metrics, {_e(every)}; '
                                    f"best epoch in bold. {_e(PIXEL_VS_PARTICLE)}</p>{table}"))
    else:
        sec.children.append(Section(ctx.new_id(f"{p}training-curves"), "Training curves",
                                    _note("No epoch recorded yet (metrics.json missing or empty).")))

    rows: list[tuple[str, Any]] = []
    if summary is not None:
        bf = summary.get("best_f1")
        rows.append(("best validation F1", _Raw(f"{_e(_metric(bf))} (epoch {_e(_fmt(summary.get('best_epoch')))})")))
        rows.append(("parameters", summary.get("parameters")))
        rows.append(("seconds per epoch", summary.get("seconds_per_epoch")))
        rows.append(("calibrated pick threshold", summary.get("pick_threshold")))
    elif history:
        bf = max((_num(r.get("f1")) for r in history if math.isfinite(_num(r.get("f1")))), default=None)
        rows.append(("best validation F1", _Raw(f"{_e(_metric(bf))} (epoch {_e(_fmt(best_epoch))})")))
    if history:
        secs = [_num(r.get("seconds")) for r in history if math.isfinite(_num(r.get("seconds")))]
        rows.append(("epochs recorded", len(history)))
        if secs:
            rows.append(("training time (s)", round(sum(secs), 1)))
    final = (summary or {}).get("final") if summary else (history[-1] if history else None)
    if isinstance(final, Mapping):
        rows.append((f"last epoch ({_fmt(final.get('epoch'))})", _metric_line(final)))
    if rows:
        sec.children.append(Section(ctx.new_id(f"{p}training-summary"), "Summary", _kv_table(rows)))
    return sec


def _metric_line(m: Mapping) -> str:
    """'loss 0.2856 · P 0.7368 · R 0.6383 · F1 0.6840 · IoU 0.5197 · AUC 0.8569' for the keys present."""
    names = [("train_loss", "loss"), ("precision", "P"), ("recall", "R"), ("f1", "F1"), ("iou", "IoU"),
             ("auc", "AUC"), ("ap", "AP")]
    return " · ".join(f"{label} {_metric(m.get(k))}" for k, label in names if k in m)


def _sources(paths: Sequence[Path], ctx: _Context) -> str:
    if not paths:
        return ""
    return '<p class="sources">Files: ' + ", ".join(ctx.link(x) for x in paths) + "</p>"


# --------------------------------------------------------------------------- self-training


def _selftrain_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = d / "training_summary.json"
    sec = Section(ctx.new_id(f"{p}selftrain"), title)
    if not path.is_file():  # the supervised phase or the first iteration is still running
        cfg = _read_yaml(d / "config.yaml") if (d / "config.yaml").is_file() else None
        sec.body = (_sources([x for x in (d / "config.yaml",) if x.is_file()], ctx)
                    + _note("In progress: no self-training iteration has finished yet (no training_summary.json); "
                            "the supervised phase is below."))
        if isinstance(cfg, Mapping):
            sec.children.append(Section(ctx.new_id(f"{p}selftrain-config"), "Configuration", _config_tables(cfg)))
        return sec
    s = _read_json(path)
    if not isinstance(s, Mapping):
        raise ValueError("training_summary.json: not a JSON object")
    its = [it for it in (s.get("iterations") or []) if isinstance(it, Mapping)]
    base = s.get("baseline") if isinstance(s.get("baseline"), Mapping) else None
    st_cfg = (s.get("config") or {}).get("selftrain") if isinstance(s.get("config"), Mapping) else None
    intro = [_sources([path], ctx)]
    if isinstance(st_cfg, Mapping):
        intro.append(_kv_table(_flatten(st_cfg)))
    sec.body = "".join(intro)

    header = ["Iteration", "Positive thr.", "Negative thr.", "Pseudo-positive %", "Reliable-negative %",
              "Ignored %", "Label agreement", "Train loss", "Val precision", "Val recall", "Val F1", "Val IoU",
              "Warnings"]
    rows, f1s = [], []
    if base is not None:
        rows.append(["baseline (supervised)", "", "", "", "", "", "", "", _metric(base.get("precision")),
                     _metric(base.get("recall")), _metric(base.get("f1")), _metric(base.get("iou")), ""])
        f1s.append(_num(base.get("f1")))
    for it in its:
        v = it.get("validation") if isinstance(it.get("validation"), Mapping) else {}
        rows.append([_fmt(it.get("iteration")), _metric(it.get("positive_threshold"), 3),
                     _metric(it.get("negative_threshold"), 3), _pct(it.get("pseudo_positive")),
                     _pct(it.get("reliable_negative")), _pct(it.get("ignored")), _metric(it.get("label_agreement"), 3),
                     _metric(it.get("train_loss")), _metric(v.get("precision")), _metric(v.get("recall")),
                     _metric(v.get("f1")), _metric(v.get("iou")), str(len(it.get("warnings") or []))])
        f1s.append(_num(v.get("f1")))
    finite = [f for f in f1s if math.isfinite(f)]
    best = max(finite) if finite else None
    bold = [best is not None and f == best for f in f1s]
    if rows:
        table = _table(header, rows, bold=bold)
        caption = ('<p class="caption">Coverage in % of training pixels (pseudo-labels before combining with the '
                   "labels; ignored after combining); label agreement = share of labelled particle pixels the model "
                   "predicts >= 0.5; validation pixel metrics. Best validation F1 in bold.</p>")
    else:
        table, caption = _note("No iteration recorded yet."), ""
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-table"), "Iterations", caption + table))
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-figure"), "Coverage and validation",
                                _fig(figures.selftrain_figure(s), "self-training coverage and validation F1")))
    warns = [str(w) for w in (s.get("warnings") or [])]
    body = ("<ul class=\"warnings\">" + "".join(f"<li>{_e(w)}</li>" for w in warns) + "</ul>") if warns \
        else _note("No warning signs (rising loss, pseudo-positive or ignored coverage above 50%).")
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-warnings"), f"Warnings ({len(warns)})", body))
    final_rows: list[tuple[str, Any]] = [("calibrated pick threshold", s.get("pick_threshold"))]
    if isinstance(s.get("final"), Mapping):
        final_rows.append(("final validation (pixels)", _metric_line(s["final"])))
    if base is not None:
        final_rows.append(("supervised baseline (pixels)", _metric_line(base)))
    sec.children.append(Section(ctx.new_id(f"{p}selftrain-final"), "Result", _kv_table(final_rows)))
    return sec


# --------------------------------------------------------------------------- picking


def _pick_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = d / "pick_summary.json"
    s = _read_json(path)
    if not isinstance(s, Mapping):
        raise ValueError("pick_summary.json: not a JSON object")
    sec = Section(ctx.new_id(f"{p}pick"), title)
    per = s.get("per_micrograph") if isinstance(s.get("per_micrograph"), Mapping) else {}
    keys = ["n_micrographs", "n_picks", "threshold", "calibrated_threshold", "seconds", "seconds_per_micrograph",
            "downsample", "radius", "models"]
    rows = [(k.replace("_", " "), s.get(k)) for k in keys if k in s]
    rows += [(k.replace("_", " "), v) for k, v in s.items() if k not in keys and k not in ("per_micrograph", "outputs")]
    if per:
        counts = sorted(_num(v) for v in per.values() if math.isfinite(_num(v)))
        if counts:
            rows.append(("picks per micrograph (min / median / max)",
                         f"{counts[0]:g} / {statistics.median(counts):g} / {counts[-1]:g}"))
    srcs = [path] + [x for x in (d / "config.yaml",) if x.is_file()]
    parts = [_sources(srcs, ctx)] + [_note(n, "warn") for n in [candidates_note(s)] if n] + [_kv_table(rows)]
    if (d / "config.yaml").is_file():
        try:
            cfg = _read_yaml(d / "config.yaml")
            if isinstance(cfg, Mapping):
                top = [(k, v) for k, v in cfg.items() if not isinstance(v, Mapping)]
                pick_cfg = cfg.get("pick") if isinstance(cfg.get("pick"), Mapping) else {}
                parts.append("<h4>Configuration</h4>" + _kv_table(top + [(f"pick.{k}", v) for k, v in _flatten(pick_cfg)]))
        except ValueError as exc:
            parts.append(_note(str(exc), "warn"))
    outputs = [str(o) for o in (s.get("outputs") or [])]
    if outputs:
        items = []
        for o in outputs[:MAX_TABLE_ROWS]:
            cand = [Path(o)] if Path(o).is_absolute() else [d / o, d / Path(o).name, Path(o)]
            hit = next((c for c in cand if c.exists()), None)
            label = o
            if hit is not None:
                try:
                    label = hit.resolve().relative_to(d.resolve()).as_posix()
                except ValueError:  # outside the run directory: the path as recorded
                    pass
            items.append(f"<li>{ctx.link(hit, label) if hit else _e(o) + ' <span class=muted>(not found)</span>'}</li>")
        more = f"<li>… {len(outputs) - MAX_TABLE_ROWS} more</li>" if len(outputs) > MAX_TABLE_ROWS else ""
        parts.append(f"<h4>Output files</h4><ul>{''.join(items)}{more}</ul>")
    sec.body = "".join(parts)
    if per:
        body = _fig(figures.pick_counts_figure(per), "picks per micrograph") if len(per) > 1 else ""
        names = sorted(per, key=_natural_key)
        shown = names[:MAX_TABLE_ROWS]
        table = _table(["Micrograph", "Picks"], [[n, per[n]] for n in shown])
        body += f"<details><summary>Table</summary>{table}</details>" if 1 < len(per) <= 40 else table
        if len(names) > len(shown):
            body += _note(f"… and {len(names) - len(shown)} more micrographs (see pick_summary.json).")
        sec.children.append(Section(ctx.new_id(f"{p}pick-micrographs"), "Picks per micrograph", body))
    return sec


# --------------------------------------------------------------------------- evaluation


def _read_pr_csv(path: Path) -> dict | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    try:
        return {"thresholds": [float(r["threshold"]) for r in rows],
                "precision": [float(r["precision"]) for r in rows],
                "recall": [float(r["recall"]) for r in rows]}
    except (KeyError, TypeError, ValueError):
        return None


def _evaluation_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = d / "metrics.json"
    m = _read_json(path)
    overall = m.get("overall") if isinstance(m.get("overall"), Mapping) else {}
    sec = Section(ctx.new_id(f"{p}evaluation"), title)
    sources = [path] + [x for x in (d / "pr_curve.csv",) if x.is_file()]
    keys = [("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("ap", "average precision (AP)"),
            ("n_picks", "picks"), ("n_truth", "true particles"), ("n_matched", "matched"),
            ("mean_error", "mean centre error (px)"), ("threshold", "score threshold"),
            ("best_f1", "best F1 over thresholds"), ("best_threshold", "threshold of the best F1")]
    rows: list[tuple[str, Any]] = [("match radius (px)", m.get("radius"))]
    rows += [(label, overall.get(k)) for k, label in keys if k in overall]
    sec.body = (_sources(sources, ctx) + _kv_table(rows) + '<p class="caption">Particle metrics: picks matched to '
                "true centres within the match radius; the score threshold is the one the picks were scored at (—: "
                "every pick in the file).</p>")

    curve_src = dict(overall)
    if not curve_src.get("pr_curve") and (d / "pr_curve.csv").is_file():
        curve_src["pr_curve"] = _read_pr_csv(d / "pr_curve.csv") or {}
    if curve_src.get("pr_curve"):
        ctx.used_files.add((d / "pr_curve.png").resolve())
        sec.children.append(Section(ctx.new_id(f"{p}evaluation-pr"), "Precision-recall curve",
                                    _fig(figures.pr_curve_figure({"picks": curve_src}), "precision-recall curve",
                                         "Dot: the operating point (all picks, or those above the threshold).")))

    per = m.get("per_micrograph") if isinstance(m.get("per_micrograph"), Mapping) else {}
    if per:
        names = sorted(per, key=_natural_key)
        shown = names[:MAX_TABLE_ROWS]
        table = _table(["Micrograph", "Picks", "Truth", "Matched", "Precision", "Recall", "F1", "AP"],
                       [[n, _fmt(per[n].get("n_picks")), _fmt(per[n].get("n_truth")), _fmt(per[n].get("n_matched")),
                         _metric(per[n].get("precision")), _metric(per[n].get("recall")), _metric(per[n].get("f1")),
                         _metric(per[n].get("ap"))] for n in shown if isinstance(per[n], Mapping)])
        if len(names) > len(shown):
            table += _note(f"… and {len(names) - len(shown)} more micrographs (see metrics.json).")
        sec.children.append(Section(ctx.new_id(f"{p}evaluation-micrographs"), "Per micrograph", table))
    return sec


# --------------------------------------------------------------------------- comparison


_INLINE = [(re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
           (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1")]
_CODE = re.compile(r"`([^`]+)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _md_inline(text: str, image: Callable[[str, str], str] | None = None) -> str:
    """Inline Markdown: `code`, **bold**, *italic*, links (text only), images via ``image(alt, src)``."""
    parts = _CODE.split(text)  # odd indices: code spans, left verbatim
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{_e(part)}</code>")
            continue
        pieces, last = [], 0
        for m in _IMAGE.finditer(part):
            pieces.append(_md_text(part[last:m.start()]))
            pieces.append(image(m.group(1), m.group(2)) if image else _e(m.group(1)))
            last = m.end()
        pieces.append(_md_text(part[last:]))
        out.append("".join(pieces))
    return "".join(out)


# emoji need an emoji font, which many systems (and headless browsers) lack: text symbols instead
_SYMBOLS = {"\u2705": '<span class="ok">\u2713</span>', "\u274c": '<span class="bad">\u2717</span>',
            "\U0001f500": '<span class="varied">\u21c4</span>', "\u26a0": '<span class="bad">\u26a0</span>',
            "\ufe0f": ""}


def _md_text(text: str) -> str:
    out = _e(text)
    for pat, rep in _INLINE:
        out = pat.sub(rep, out)
    for emoji, symbol in _SYMBOLS.items():
        out = out.replace(emoji, symbol)
    return out


def _md_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def markdown_to_html(text: str, image: Callable[[str, str], str] | None = None) -> str:
    """A small Markdown subset: headings, pipe tables, lists, block quotes, fenced code, paragraphs,
    `code`, **bold**, *italic*; links keep their text only; ``image(alt, src)`` renders images
    (default: the alt text)."""
    out: list[str] = []
    lines = text.splitlines()
    i, para = 0, []

    def inline(t: str) -> str:
        return _md_inline(t, image)

    def flush():
        if para:
            joined = " ".join(para)
            # a paragraph that is only an image becomes a figure (no <figure> inside <p>)
            out.append(inline(joined) if _IMAGE.fullmatch(joined) else f"<p>{inline(joined)}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append(f"<pre>{_e(chr(10).join(lines[i + 1:j]))}</pre>")
            i = j + 1
            continue
        if not s:
            flush()
        elif m := re.match(r"(#{1,6})\s+(.*)", s):
            flush()
            level = min(6, len(m.group(1)) + 3)  # '#' -> h4: inside a report section
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif s.startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [_md_cells(b) for b in block]
            header = rows[0]
            body = rows[1:]
            if body and all(re.fullmatch(r":?-+:?", c.replace(" ", "")) for c in body[0] if c):
                body = body[1:]
            thead = "".join(f"<th>{inline(c)}</th>" for c in header)
            tbody = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
            out.append(f'<table class="data"><thead><tr>{thead}</tr></thead><tbody>{tbody}</tbody></table>')
            continue
        elif re.match(r"([-*+]|\d+[.)])\s+", s):
            flush()
            ordered = re.match(r"\d+[.)]\s+", s) is not None
            pat = r"\s*\d+[.)]\s+" if ordered else r"\s*[-*+]\s+"
            items = []
            while i < len(lines) and re.match(pat, lines[i]):
                items.append(re.sub("^" + pat, "", lines[i]))
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{inline(x)}</li>" for x in items) + f"</{tag}>")
            continue
        elif s.startswith(">"):
            flush()
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote>{inline(' '.join(quote))}</blockquote>")
            continue
        elif re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", s):
            flush()
            out.append("<hr>")
        else:
            para.append(s)
        i += 1
    flush()
    return "".join(out)


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
    jpath, mpath = d / "comparison.json", d / "comparison.md"
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


# --------------------------------------------------------------------------- figures


def _png_for_embedding(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(PNG_SIGNATURE):
        return None
    if len(data) <= MAX_EMBED_BYTES:
        return data
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((1600, 1600))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - an unreadable picture is skipped, not fatal
        return None


def _figures_section(d: Path, p: str, ctx: _Context, title: str) -> Section | None:
    parts = []
    for png in _pngs(d):
        if png.resolve() in ctx.used_files:
            continue
        data = _png_for_embedding(png)
        name = png.relative_to(d).as_posix()
        if data is None:
            parts.append(_note(f"{name}: not a readable PNG", "warn"))
            continue
        parts.append(_img_tag(data, name, name))
    if not parts:
        return None
    return Section(ctx.new_id(f"{p}figures"), title, "".join(parts))


# --------------------------------------------------------------------------- assembly

_RENDERERS: dict[str, tuple[str, Callable[[Path, str, _Context, str], Section | None]]] = {
    "comparison": ("Comparison", _comparison_section),
    "selftrain": ("Self-training", _selftrain_section),
    "training": ("Training", _training_sections),
    "pick": ("Picking", _pick_section),
    "evaluation": ("Evaluation", _evaluation_section),
    "figures": ("Figures", _figures_section),
}


def _safe(kind: str, d: Path, p: str, ctx: _Context, title: str) -> Section | None:
    fn = _RENDERERS[kind][1]
    try:
        return fn(d, p, ctx, title)
    except Exception as exc:  # noqa: BLE001 - one broken file must not lose the rest of the page
        return Section(ctx.new_id(f"{p}{kind}"), title,
                       f'<p class="warn render-error">Could not render this section: {_e(type(exc).__name__)}: '
                       f"{_e(exc)}</p>")


def _run_sections(d: Path, prefix: str, ctx: _Context, depth: int, parent_kinds: Sequence[str] = ()) -> list[Section]:
    # figures last, so the PNGs a section already shows (pr_curve.png) are not repeated
    kinds = run_kinds(d)
    ordered = [k for k in kinds if k != "figures"]
    sections = []
    for kind in ordered:
        s = _safe(kind, d, prefix, ctx, _RENDERERS[kind][0])
        if s is not None:
            sections.append(s)
    if depth > 0:
        for sub in _subdirs(d):
            if not find_runs(sub, depth - 1):
                continue
            sp = f"{prefix}{sub.name}-"
            child = Section(ctx.new_id(f"run-{prefix}{sub.name}"), f"{sub.name}/",
                            children=_run_sections(sub, sp, ctx, depth - 1, kinds))
            kinds_sub = run_kinds(sub)
            desc = ", ".join(_RENDERERS[k][0].lower() for k in kinds_sub) or "sub-runs"
            child.body = f'<p class="muted">Sub-run <code>{_e(sub.relative_to(d).as_posix())}</code>: {_e(desc)}.</p>'
            # self-training's fine-tuning rounds: summarised in the iteration table, details collapsed
            # and a comparison's variant runs (the comparison tabulates them): details collapsed
            child.collapsed = ("selftrain" in kinds and re.fullmatch(r"iteration_\d+", sub.name) is not None) \
                or "comparison" in kinds
            sections.append(child)
    if "figures" in kinds:  # after the sub-runs, and the PNGs a section already shows are not repeated
        s = _safe("figures", d, prefix, ctx, _RENDERERS["figures"][0])
        if s is not None:
            sections.append(s)
    return sections


_CSS = """
:root{--fg:#1d2330;--muted:#5b6472;--line:#d8dde6;--accent:#2458a6;--bg:#fff;--soft:#f4f6fa}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
header.page{border-bottom:2px solid var(--accent);margin-bottom:18px;padding-bottom:10px}
header.page h1{margin:0 0 4px;font-size:26px}
.meta{color:var(--muted);font-size:13px}
.meta code{font-size:12px}
h2{font-size:21px;margin:34px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:17px;margin:22px 0 6px}
h4{font-size:15px;margin:14px 0 6px}
h5,h6{font-size:14px;margin:12px 0 4px}
section section{margin-left:0}
section.run{border-left:3px solid var(--line);padding-left:16px;margin-top:22px}
nav.toc{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:10px 18px;font-size:14px}
nav.toc h2{border:0;margin:0 0 4px;font-size:16px;padding:0}
nav.toc ul{margin:2px 0;padding-left:20px}
nav.toc>ul{columns:2;column-gap:28px}
nav.toc li{break-inside:avoid}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:left;vertical-align:top}
table.data thead th{background:var(--soft);position:sticky;top:0}
table.data tbody tr:nth-child(even){background:#fafbfd}
table.kv th{background:var(--soft);font-weight:600;white-space:nowrap}
table.kv td{max-width:640px;overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{font-weight:700;background:#eaf3e6 !important}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:0 22px}
.cfg h4{margin-bottom:2px}
figure{margin:10px 0 18px}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:13px;margin-top:3px}
.caption,.muted,.sources{color:var(--muted);font-size:13px;margin:4px 0}
.warn{background:#fff6e0;border:1px solid #f0c36d;border-radius:4px;padding:6px 10px}
ul.warnings li{color:#8a5300}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--soft);padding:8px;overflow:auto}
details{margin:8px 0}summary{cursor:pointer;color:var(--accent)}
.ok{color:#2a8a2a;font-weight:700}.bad{color:#b35c00;font-weight:700}.varied{color:var(--accent);font-weight:700}
blockquote{margin:8px 0;padding:4px 12px;border-left:3px solid var(--line);color:var(--muted)}
.md table{font-size:13px}
.md h4{font-size:17px;margin-top:18px}.md h5{font-size:15px;margin-top:16px}.md h6{font-size:14px}
#summary{background:#f3f8ff;border:1px solid #c9d9f2;border-radius:6px;padding:2px 18px 10px;margin-bottom:18px}
#summary h2{margin-top:12px}#summary pre{white-space:pre-wrap;overflow-wrap:anywhere}
@media print{nav.toc>ul{columns:1}table.data thead th{position:static}}
"""


def _toc(sections: Sequence[Section]) -> str:
    def items(secs):
        return "".join(f'<li><a href="#{s.id}">{_e(s.title)}</a>'
                       + (f"<ul>{items(s.children)}</ul>" if s.children else "") + "</li>" for s in secs)

    return f'<nav class="toc" id="contents"><h2>Contents</h2><ul>{items(sections)}</ul></nav>'


def _render_section(s: Section, level: int) -> str:
    h = min(level, 6)
    cls = ' class="run"' if s.id.startswith("run-") else ""
    inner = f"<h{h}>{_e(s.title)}</h{h}>{s.body}" + "".join(_render_section(c, level + 1) for c in s.children)
    if s.collapsed:
        inner = (f"<h{h}>{_e(s.title)}</h{h}>{s.body}<details><summary>Show details</summary>"
                 + "".join(_render_section(c, level + 1) for c in s.children) + "</details>")
    return f'<section id="{_e(s.id)}"{cls}>{inner}</section>'


def render_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                  depth: int = MAX_DEPTH) -> tuple[str, list[Section]]:
    """The HTML page for ``run_dir`` and its section tree (links are relative to ``out``'s folder).

    Raises :class:`InputError` when ``run_dir`` is not a folder or holds no cryopick run.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(f"{d}: not a directory; give a cryopick run directory")
    if not find_runs(d, depth):
        raise InputError(f"{d}: no cryopick run found (expected metrics.json, training_summary.json, "
                         "pick_summary.json, comparison.json or *.png)")
    out_path = Path(out) if out is not None else d / "report.html"
    ctx = _Context(out_path.parent)
    ctx.ids.add("contents")
    sections = _run_sections(d, "", ctx, depth)
    top = summary_section(d, ctx, Section, _e)
    name = d.resolve().name or str(d)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = "".join(_render_section(s, 2) for s in sections)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"cryopick {_e(__version__)}\">"
        f"<title>cryopick report: {_e(name)}</title><style>{_CSS}</style></head><body><main>"
        f"<header class=\"page\"><h1>cryopick report: {_e(name)}</h1>"
        f"<div class=\"meta\">cryopick {_e(__version__)} · generated {_e(now)} · run directory "
        f"<code>{_e(d.resolve())}</code></div></header>"
        f"{_render_section(top, 2) if top else ''}{_toc(sections)}{body}</main></body></html>\n"
    )
    return page, ([top] if top else []) + sections


def build_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 depth: int = MAX_DEPTH) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) atomically; returns the path."""
    out_path = Path(out) if out is not None else Path(run_dir) / "report.html"
    page, _ = render_report(run_dir, out_path, depth)
    return atomic_write_text(out_path, page)


write_report = build_report  # the name cryopick.demo uses
