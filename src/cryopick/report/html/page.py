"""The page model (sections, shared context) and the HTML pieces every section uses."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...runlayout import read_json
from .. import figures
from ..figures import _num
from ..summary import compact_image


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


_read_json = read_json  # a run file's JSON; ValueError naming the file (cryopick.runlayout)


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read ({exc})") from None



def _metric_line(m: Mapping) -> str:
    """'loss 0.2856 · P 0.7368 · R 0.6383 · F1 0.6840 · IoU 0.5197 · AUC 0.8569' for the keys present."""
    names = [("train_loss", "loss"), ("precision", "P"), ("recall", "R"), ("f1", "F1"), ("iou", "IoU"),
             ("auc", "AUC"), ("ap", "AP")]
    return " · ".join(f"{label} {_metric(m.get(k))}" for k, label in names if k in m)


def _sources(paths: Sequence[Path], ctx: _Context) -> str:
    if not paths:
        return ""
    return '<p class="sources">Files: ' + ", ".join(ctx.link(x) for x in paths) + "</p>"


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
