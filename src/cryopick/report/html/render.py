"""Assembling the page: the sections of every run and sub-run, the contents, the document."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from cryopick import __version__
from cryopick.errors import InputError
from cryopick.io.atomic import atomic_write_text

from ..summary import summary_section
from .comparison import _comparison_section
from .evaluation import _evaluation_section
from .page import Section, _Context, _e
from .picking import _pick_section
from .pictures import _figures_section
from .runs import MAX_DEPTH, _subdirs, find_runs, run_kinds
from .selftrain import _selftrain_section
from .style import _CSS
from .training import _training_sections


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
