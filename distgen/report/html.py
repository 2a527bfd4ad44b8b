"""HTML building blocks of a self-contained page: embedded figures, tables, sections, the page shell.

Nothing here refers to a file or a URL: figures are embedded as ``data:`` URIs (SVG with text as
outlines, scatter clouds rasterised inside it; PNG where asked), styles are inline, no script.
"""

from __future__ import annotations

import base64
import io
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from matplotlib.figure import Figure

from distgen.glyphs import MISSING_WARNING, missing_from, text_fonts
from distgen.wording import first_of

CSS = """
:root { --model: #0072B2; --worse: #D55E00; --ceiling: #009E73; --ink: #1d1d1f; --muted: #6e6e73; --rule: #e3e3e6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--rule); }
header h1 { margin: 0 0 4px; font-size: 21px; }
header p { margin: 2px 0; color: var(--muted); }
nav { position: sticky; top: 0; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--rule); padding: 6px 32px; z-index: 2; }
nav a { margin-right: 18px; color: var(--model); text-decoration: none; font-weight: 600; font-size: 13px; }
main { padding: 0 32px 40px; max-width: 1180px; }
section { padding-top: 10px; border-bottom: 1px solid var(--rule); padding-bottom: 18px; }
h2 { font-size: 18px; margin: 18px 0 6px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
p.lead, p.note { color: var(--muted); margin: 4px 0 10px; max-width: 900px; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; max-width: 900px; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 12.5px; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
th { background: #f6f6f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.good { color: var(--model); font-weight: 600; }
td.bad { color: var(--worse); font-weight: 600; }
td.why { color: var(--muted); max-width: 460px; }
span.flag { color: var(--worse); font-weight: 600; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--model); font-weight: 600; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f6f8; padding: 8px 10px; overflow-x: auto; }
.empty { color: var(--muted); font-style: italic; }
"""


def num(v: Any, digits: int = 4) -> str:
    """A number for a table cell (``nan`` for NaN/None, 4 significant digits)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float):
        return "nan" if math.isnan(float(v)) else f"{v:.{digits}g}"
    return str(v)


def embed(fig: Figure, fmt: str = "svg", dpi: int = 150) -> bytes:
    """The figure's bytes in ``fmt`` (``svg`` or ``png``), drawn in the active theme."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def _texts(fig: Figure) -> list[Any]:
    """The visible, non-empty ``Text`` artists of ``fig``, its axes' tick labels made first (they are made at a draw)."""
    from matplotlib.text import Text

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            axis.get_ticklabels(minor=False), axis.get_ticklabels(minor=True)
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def drawn_as_boxes(fig: Figure) -> list[str]:
    """The distinct characters of ``fig``'s text that no font of their text's chain draws (``glyphs.missing_from`` over
    the font files matplotlib resolves each ``Text`` artist's own properties to, ``glyphs.text_fonts``): what matplotlib
    draws as boxes. TeX-like math (between ``$``) is left out."""
    out: list[str] = []
    for t in _texts(fig):
        text = str(t.get_text())
        if t.get_usetex():
            continue
        if text.count("$") >= 2 and (text.count("$") - text.count(r"\$")) % 2 == 0:
            text = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", text)  # mathtext draws with its own fonts
        out += missing_from(text, text_fonts(t.get_fontproperties()))
    return list(dict.fromkeys(out))


def embed_checked(fig: Figure, fmt: str = "svg", dpi: int = 150) -> tuple[bytes, list[str]]:
    """``(embed(fig, fmt, dpi), characters drawn as boxes)``: the characters of the figure's ``Text`` artists that their
    fonts lack (``drawn_as_boxes``, from the fonts' coverage, before and after the draw). matplotlib's own "Glyph ...
    missing from font(s)" warning for them is left out (the caption names them); every other warning passes on."""
    before = drawn_as_boxes(fig)
    if not before:  # the common case: no warning machinery around the draw
        raw = embed(fig, fmt, dpi)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*" + MISSING_WARNING)
            raw = embed(fig, fmt, dpi)
    return raw, list(dict.fromkeys([*before, *drawn_as_boxes(fig)]))


def figure(fig: Figure | None, caption: str, alt: str, fmt: str = "svg", dpi: int = 150) -> str:
    """``<figure>`` with the figure as a ``data:`` URI image and a caption (empty string for ``None``).

    Characters the figure's fonts could not draw (matplotlib's "Glyph ... missing from font(s)" warnings: a text that
    did not pass through ``style.short_label``) are named in the caption: a box is never silent."""
    if fig is None:
        return ""
    raw, boxes = embed_checked(fig, fmt, dpi)
    if boxes:
        caption += (f" <em>{len(boxes)} character(s) of this figure's text have no glyph in its fonts and show as boxes: "
                    f"{escape(first_of(boxes, 8, render=lambda ch: f'{ch!a} (U+{ord(ch):04X})'))}; "
                    "the tables give the text as written.</em>")
    data = base64.b64encode(raw).decode()
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return (f'<figure><img alt="{escape(alt)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


@dataclass
class Cell:
    """A table cell: text (escaped) with an optional CSS class, or trusted ``html``."""

    text: str = ""
    cls: str = ""
    html: str | None = None

    def render(self, tag: str = "td") -> str:
        body = self.html if self.html is not None else escape(self.text)
        return f'<{tag} class="{self.cls}">{body}</{tag}>' if self.cls else f"<{tag}>{body}</{tag}>"


def table(head: Sequence[str], rows: Iterable[Sequence[Cell | str]], cls: str = "") -> str:
    """An HTML table; plain strings are escaped, ``Cell`` carries classes or trusted HTML."""
    out = [f'<table class="{cls}">' if cls else "<table>", "<thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join((c if isinstance(c, Cell) else Cell(str(c))).render() for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


#: Most rows of the table of labels that figures write with escapes.
LABEL_ROWS = 200


def labels_section(shown: dict[str, str], note: str = "") -> str:
    """The table from each label a figure writes with escapes to the label itself, and how to draw it (``note``: a
    sentence after it, escaped)."""
    note = f" {escape(note)}" if note else ""
    rows: list[list[Cell | str]] = [[Cell(html=f"<code>{escape(v)}</code>"), k] for k, v in list(shown.items())[:LABEL_ROWS]]
    more = f" The first {LABEL_ROWS} of {len(shown)} are listed." if len(shown) > LABEL_ROWS else ""
    return ('<p class="lead">These labels hold characters that no font installed here draws (CJK, some emoji or '
            "scripts: matplotlib's DejaVu Sans and the other installed fonts lack them), so the figures write each such "
            "character as its escape (<code>\\u57fa</code>, as Python writes it) instead of an empty box. Install a font "
            "that has them (e.g. Noto Sans CJK: <code>apt install fonts-noto-cjk</code>), then rebuild matplotlib's font "
            "list (<code>rm -r ~/.cache/matplotlib</code>) and write the page again (<code>python -m distgen.report ...</code>) "
            f"to draw them.{note}{more}</p>" + table(["in figures", "label"], rows))


@dataclass
class Section:
    """A page section: anchor id, title, and its HTML body."""

    id: str
    title: str
    body: str


def page(title: str, lines: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole HTML document: header lines (trusted HTML), a section menu, the sections."""
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    head = "".join(f"<p>{line}</p>" for line in lines)
    body = "".join(f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1>{head}</header><nav>{nav}</nav><main>{body}</main></body></html>\n")
