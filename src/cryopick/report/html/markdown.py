"""A small Markdown subset rendered as HTML (for ``comparison.md``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from .page import _e


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
