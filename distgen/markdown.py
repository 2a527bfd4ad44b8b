r"""Labels in the Markdown distgen writes for people (``summary.md``, ``compare.md``, a sweep's ``summary.md``).

Labels come from users' data and configs (perturbations, contexts, variants, model and baseline names, paths) and
may hold any character. Written raw, ``|`` splits a table cell, ``<x>`` is read as HTML, ``*a*`` or ``_a_`` as
emphasis, ``[a](b)`` as a link, a backtick opens code and a newline ends the table. ``cell``, ``inline`` and
``code`` make a label read back as itself, while leaving ordinary names (``pearson_delta``,
``KLF1+MAP2K6``, ``model.coupling.name=exact_ot``) as they are, so the file stays readable in a terminal. No
well-kept library escapes Markdown *inline* text (Markdown libraries render it; they do not quote into it), so this
is written by hand, after the CommonMark spec (an ``_`` between two letters or digits can neither open nor close
emphasis) and for what both CommonMark/GFM and Python-Markdown (mkdocs) read: a backslash before ``\ ` * _ > |``,
before a ``]`` followed by ``( [ :`` and before a block marker that begins a line (``# + - [ 1.``); an entity for
``& ~`` and for a ``<`` that could open a tag (``p < 0.05`` is left as written).
"""

from __future__ import annotations

import re

#: Characters that always mean something inline and are backslash-escaped (``|`` only in a table: outside one,
#: Python-Markdown keeps its backslash).
_ALWAYS = re.compile(r"([\\`*>])")
#: A ``]`` that would close a link or image (``[a](b)``, ``[a][b]``) or a reference definition (``[a]: b``); a lone
#: ``[x]`` (a Python list in a note) renders as itself and is left readable.
_LINK_CLOSE = re.compile(r"\](?=[(\[:])")
#: Characters escaped as entities: Python-Markdown (mkdocs) keeps a backslash before them literally.
_ENTITIES = {"&": "&amp;", "~": "&#126;"}
#: A ``<`` that could open HTML or an autolink (``<b>``, ``</x>``, ``<!--``, ``<?``, ``<http:...>``); another (``p < 0.05``,
#: ``<= 2``, ``<3``) renders as itself and stays readable in a terminal, where ``distgen compare`` prints its notes.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
#: An ``_`` not between two letters/digits (``_x``, ``x_``, ``x__``): it could open or close emphasis.
_LOOSE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
#: What would start a block at the beginning of a line or list item: a heading, a list marker, a task box ``[ ]``.
_BLOCK_START = re.compile(r"^([#+\[-])|^(\d+)([.)])")


def _escape(value: object, pipe: bool, line_start: bool) -> str:
    s = _TAG_OPEN.sub("&lt;", "".join(_ENTITIES.get(c, c) for c in str(value)))
    s = _ALWAYS.sub(r"\\\1", s)
    s = _LINK_CLOSE.sub(r"\\]", s)
    if pipe:
        s = s.replace("|", "\\|")
    s = _LOOSE_UNDERSCORE.sub(r"\\_", s)
    if line_start:
        s = _BLOCK_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), s)
    s = re.sub(r"\r\n|\r|\n", "<br>", s)
    stripped = s.strip(" ")
    if stripped != s:  # a table cell or a list item trims them
        lead, trail = len(s) - len(s.lstrip(" ")), len(s) - len(s.rstrip(" "))
        s = "&#32;" * lead + stripped + "&#32;" * trail
    return s


def cell(value: object) -> str:
    """``value`` as the text of a Markdown table cell that renders as exactly ``str(value)``.

    ``|`` is escaped, a newline becomes ``<br>`` (a line break inside the cell), leading and trailing spaces,
    which the cell would trim, become ``&#32;``.
    """
    return _escape(value, pipe=True, line_start=False)


def inline(value: object, line_start: bool = False) -> str:
    """``value`` as Markdown text outside a table (a list item, a sentence) that renders as exactly ``str(value)``.

    ``line_start``: the text begins a line or a list item, where ``# x``, ``- x`` or ``1. x`` would start a block.
    """
    return _escape(value, pipe=False, line_start=line_start)


def code(value: object) -> str:
    """``value`` as a Markdown code span outside a table (a path, a variant): fenced by more backticks than it holds,
    newlines as spaces (a code span cannot hold a line break). In a table cell use ``cell`` (GFM splits cells on
    ``|`` even inside code)."""
    s = re.sub(r"\r\n|\r|\n", " ", str(value))
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.endswith(" ") and s.strip()) else ""
    return f"{fence}{pad}{s}{pad}{fence}"
