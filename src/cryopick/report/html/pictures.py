"""The figures section: the run's own PNG files, captioned with their names."""

from __future__ import annotations

from pathlib import Path

from .page import Section, _Context, _img_tag, _note, _png_for_embedding
from .runs import _pngs


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
