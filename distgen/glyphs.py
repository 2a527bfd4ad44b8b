"""Which characters the figures' fonts draw, and a readable stand-in for the ones no installed font draws.

matplotlib draws text in DejaVu Sans, which has Latin, Greek, Cyrillic, Arabic, Hebrew and many symbols but no CJK
(Chinese, Japanese, Korean) and few emoji: a label ``基因A`` came out as two empty boxes and an ``A`` in every figure
(matplotlib warned "Glyph ... missing from font(s)", once, in a log nobody reads). Here:

- ``fallback_families(texts)``: installed fonts (matplotlib's font list, each font's own character map) that draw
  the characters of ``texts`` DejaVu Sans lacks; the report theme puts them after it in ``font.family``, and
  matplotlib takes each missing character from the first of them that has it (PNG and SVG alike).
- ``drawable(text)``: ``text`` with each character that no font of the active ``font.family`` draws written as its
  escape (``\\u57fa``, as Python writes it), so a figure never shows a silent box; the page says so
  (``stand_ins``) and maps each stand-in to its label.
- ``short_label(s)``: a label as every figure writes it: drawable, and cut in the middle when long.

matplotlib is imported only when these are called (``import distgen`` stays light).
"""

from __future__ import annotations

import os
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

#: The report's first font: the figures' look; other fonts only fill the characters it lacks.
BASE = "DejaVu Sans"
#: Fonts never taken as a fallback: matplotlib's own "Last Resort" (a box per Unicode block for every character: the
#: boxes this module exists to avoid) and its TeX and STIX size/variant fonts, which map letters to other shapes.
_NOT_TEXT = ("Last Resort", "LastResort", "STIXNonUnicode", "STIXSize", "cmb10", "cmex10", "cmmi10", "cmr10", "cmss10", "cmsy10",
             "cmti10", "cmtt10")


def needs_glyph(ch: str) -> bool:
    """Whether ``ch`` is drawn as a glyph: not whitespace, a control or format character (a zero-width joiner inside an
    emoji sequence) or a variation selector (which picks the form of the character before it)."""
    return not (ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") or 0xFE00 <= ord(ch) <= 0xFE0F)


@cache
def _charmap(path: str, face: int = 0) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path, face_index=face) if face else FT2Font(path)  # a face of a collection (.ttc) beyond its first
    except (OSError, RuntimeError, ValueError, TypeError):  # an unreadable font file (or face): it draws nothing
        return frozenset()
    return frozenset(font.get_charmap()) if font.scalable else frozenset()


@lru_cache(maxsize=1)
def installed_fonts() -> tuple[tuple[str, str], ...]:
    """``(family, file)`` of each installed text font matplotlib knows (its regular face), ``BASE`` first, then families
    with ``Sans`` in their name, then the rest, each group by name: the order fallbacks are tried in."""
    from matplotlib import font_manager

    best: dict[str, tuple[tuple[int, int], str]] = {}
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith(_NOT_TEXT) or not os.path.exists(entry.fname):
            continue
        rank = (entry.style != "normal", abs(int(entry.weight) - 400) if str(entry.weight).isdigit() else 400)
        if entry.name not in best or (rank, entry.fname) < best[entry.name]:
            best[entry.name] = (rank, entry.fname)
    order = sorted(best, key=lambda n: (n != BASE, "Sans" not in n, n))
    return tuple((n, best[n][1]) for n in order)


def _file(family: str) -> str | None:
    return next((path for name, path in installed_fonts() if name == family), None)


@cache
def _bold_file(family: str) -> str | None:
    """The upright bold face of ``family`` (weight 600 or more), when installed."""
    from matplotlib import font_manager

    faces = sorted(e.fname for e in font_manager.fontManager.ttflist if e.name == family and e.style == "normal"
                   and str(e.weight).isdigit() and int(e.weight) >= 600 and os.path.exists(e.fname))
    return faces[0] if faces else None


def _family_charmap(family: str, path: str) -> frozenset[int]:
    """What ``family`` draws in both its regular face (``path``) and its bold one (titles and the model's name are
    bold; DejaVu Sans Bold lacks 140 characters of the regular face, the math sans-serif letters among them)."""
    bold = _bold_file(family)
    return _charmap(path) & _charmap(bold) if bold is not None else _charmap(path)


@lru_cache(maxsize=64)
def _covered(families: tuple[str, ...]) -> frozenset[int]:
    out: set[int] = set()
    for fam in families:
        path = _file(fam)
        if path is not None:
            out |= _family_charmap(fam, path)
    return frozenset(out)


def fallback_families(texts: Iterable[str]) -> list[str]:
    """Installed families, after ``BASE``, that draw the characters of ``texts`` which ``BASE`` lacks: for each such
    character (in code point order) the first family of ``installed_fonts`` that has it, unless one already taken has
    it. ``[]`` when ``BASE`` draws them all, or no installed font draws the rest (``drawable`` then escapes them)."""
    base = _covered((BASE,))
    wanted = sorted({ord(ch) for ch in set("".join(map(str, texts))) if needs_glyph(ch)} - base)
    chosen: list[str] = []
    have: set[int] = set()
    for cp in wanted:
        if cp in have:
            continue
        for fam, path in installed_fonts():
            if fam != BASE and cp in _family_charmap(fam, path):
                chosen.append(fam)
                have |= _family_charmap(fam, path)
                break
    return chosen


def active_families() -> tuple[str, ...]:
    """The installed families of matplotlib's active ``font.family``, the chain it draws with: a generic name
    (``sans-serif``) stands for the first installed font of its list, as matplotlib reads it."""
    import matplotlib

    return families_of(matplotlib.rcParams["font.family"])


def families_of(names: Sequence[str]) -> tuple[str, ...]:
    """The installed families of the font family list ``names`` (``font.family``): a generic name stands for the first
    installed font of its matplotlib list."""
    import matplotlib

    params: Any = matplotlib.rcParams  # typed by literal keys; these are built
    installed = {name for name, _ in installed_fonts()}
    out: list[str] = []
    for fam in names:
        if fam in ("serif", "sans-serif", "cursive", "fantasy", "monospace"):
            out.append(next((f for f in params[f"font.{fam}"] if f in installed), BASE))
        elif fam in installed:
            out.append(fam)
    return tuple(dict.fromkeys(out)) or (BASE,)


def text_fonts(prop: Any) -> tuple[str, ...]:
    """The font files matplotlib draws a text of ``FontProperties`` ``prop`` with, in the order it tries them: for each
    family of the text the one font ``findfont`` resolves it to (a generic name, ``sans-serif``, to the best installed font
    of its ``font.sans-serif`` list: one font, never the list), its weight and style included (a bold title: the bold
    face); the default family's font when none resolves. As ``FontManager._find_fonts_by_props`` builds the chain."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    out: list[str] = []
    for fam in prop.get_family():
        one = prop.copy()
        one.set_family(fam)
        try:
            out.append(manager.findfont(one, fallback_to_default=False))
        except ValueError:  # not installed: matplotlib skips it too
            continue
    if not out:
        one = prop.copy()
        one.set_family(manager.defaultFamily["ttf"])
        out.append(manager.findfont(one))
    return tuple(dict.fromkeys(out))


def missing_from(text: str, fonts: Sequence[str]) -> list[str]:
    """The distinct characters of ``text`` that none of the font files ``fonts`` (``text_fonts``) draws."""
    maps = [_charmap(str(f), int(getattr(f, "face_index", 0) or 0)) for f in fonts]
    return list(dict.fromkeys(ch for ch in str(text) if needs_glyph(ch) and not any(ord(ch) in m for m in maps)))


def missing(text: str, families: Sequence[str] | None = None) -> list[str]:
    """The distinct characters of ``text`` that no font of ``families`` (default: ``active_families()``) draws."""
    have = _covered(tuple(families) if families is not None else active_families())
    return list(dict.fromkeys(ch for ch in str(text) if ord(ch) not in have and needs_glyph(ch)))  # the set first: cheap


def escape(ch: str) -> str:
    """``ch`` as Python writes it in an ASCII string: ``\\u57fa``, ``\\U0001f9ec``."""
    return ascii(ch)[1:-1]


def drawable(text: str, families: Sequence[str] | None = None) -> str:
    """``text`` with each character no font of ``families`` (default: the active ``font.family``) draws written as its
    escape (``基因A`` -> ``\\u57fa\\u56e0A`` where no installed font has CJK); ``text`` itself when every one is drawn."""
    gone = set(missing(text, families))
    if not gone:
        return str(text)
    return "".join(escape(ch) if ch in gone else ch for ch in str(text))


def stand_ins(labels: Iterable[str], families: Sequence[str] | None = None) -> dict[str, str]:
    """``{label: how figures write it}`` for the distinct ``labels`` that figures write with escapes (``drawable``)."""
    out = {}
    chain = tuple(families) if families is not None else active_families()  # read once, not per label
    for label in dict.fromkeys(map(str, labels)):
        shown = drawable(label, chain)
        if shown != label:
            out[label] = shown
    return out


#: Most characters a label takes in a figure (tick labels, titles, legends): longer ones are cut in the middle.
LABEL_WIDTH = 40


def short_label(label: str, width: int = LABEL_WIDTH) -> str:
    """``label`` as a figure shows it: cut in the middle with ``…`` when longer than ``width`` (the start and the end,
    where combinations and doses differ, both kept); whitespace runs (a newline in a label) read as one space;
    characters that no font of the active theme draws written as escapes (``\\u57fa``: ``glyphs.drawable``), never
    drawn as empty boxes, and never cut inside one (the cut falls between characters, so it may leave a few characters
    fewer). A label holding right-to-left letters (Arabic, Hebrew) is set left to right as a whole, as the page's tables
    show it (``ltr``)."""
    text = " ".join(str(label).split()) or str(label)
    gone = set(missing(text))
    pieces = [escape(ch) if ch in gone else ch for ch in text]  # what each character is written as: cut between them
    if sum(map(len, pieces)) > width:
        head = (width - 1) // 2
        start, end = _fitting(pieces, head), _fitting(pieces[::-1], width - 1 - head)
        return ltr("".join(start) + "…" + "".join(end[::-1]))
    return ltr("".join(pieces))


def _fitting(pieces: Sequence[str], room: int) -> list[str]:
    """The leading ``pieces`` whose written lengths add up to at most ``room``: a cut falls between characters, never
    inside an escape (``\\u0645`` cut to ``\\u06`` read as another character's broken escape)."""
    out: list[str] = []
    for piece in pieces:
        room -= len(piece)
        if room < 0:
            break
        out.append(piece)
    return out


#: Unicode's LEFT-TO-RIGHT ISOLATE and POP DIRECTIONAL ISOLATE: invisible, no glyph needed.
LRI, PDI = "\u2066", "\u2069"


def ltr(text: str) -> str:
    """``text`` between ``LRI`` and ``PDI`` when it holds right-to-left letters, else as it is.

    matplotlib (libraqm) orders a text by its first strong letter: ``مرحبا+\\U0001f9ecDNA`` came out as
    ``U0001f9ecDNA\\+مرحبا``, and a title ``مرحبا (Δ -2.6)`` as ``(Δ -2.6) مرحبا``. Isolated left to right, the label
    reads as in a left-to-right table, and the text around it (a ``*`` flag, a ``(Δ ...)``) stays in its place."""
    if any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        return LRI + text + PDI
    return text


def short_labels(labels: Sequence[str], width: int = LABEL_WIDTH) -> list[str]:
    """``short_label`` of each label, distinct as the labels are: labels whose cuts collide (a long common start and
    end) get a short digest of the whole label after the cut (``…#1a2b3c``), so no two rows of a figure read alike.
    At most ``width + 10`` characters each, not counting the two invisible isolates of a right-to-left label (``ltr``);
    tables and CSVs keep the whole labels."""
    out = [short_label(lab, width) for lab in labels]
    seen: dict[str, set[str]] = {}
    for lab, cut in zip(labels, out):
        seen.setdefault(cut, set()).add(str(lab))
    for i, (lab, cut) in enumerate(zip(labels, out)):
        if len(seen[cut]) > 1:
            out[i] = f"{cut} #{zlib.crc32(str(lab).encode()):08x}"  # whole: cut to width + 10, a right-to-left label's
            # isolates (2 characters) took the digest's last two digits
    if len(set(out)) < len(set(map(str, labels))):  # digests that collide too: the position tells them apart
        out = [f"{cut} [{i}]" for i, cut in enumerate(out)]
    return out


#: The start of matplotlib's warning for a character no font of the chain draws (drawn as a box).
MISSING_WARNING = "missing from font"
