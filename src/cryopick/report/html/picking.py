"""The picking section: totals, configuration, output files, picks per micrograph."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path

from ... import runlayout as layout
from .. import figures
from ..figures import _num
from ..summary import candidates_note
from .page import (
    MAX_TABLE_ROWS,
    Section,
    _Context,
    _e,
    _fig,
    _flatten,
    _kv_table,
    _natural_key,
    _note,
    _read_json,
    _read_yaml,
    _sources,
    _table,
)


def _pick_section(d: Path, p: str, ctx: _Context, title: str) -> Section:
    path = d / layout.PICK_SUMMARY
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
