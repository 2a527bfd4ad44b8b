"""One visual language for every report page: colours, markers, metric labels and the matplotlib theme.

The model is always the same blue, each baseline keeps its own colour and marker on every page
(known baselines have fixed ones; any other name gets a stable pick from a colour-blind-safe
palette), the positive references (the half-split ceiling and its replicate band) are a green band.
Axis labels carry the metric's direction, read from the metric's registered capabilities.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from distgen.glyphs import BASE, LABEL_WIDTH, fallback_families, short_label, short_labels  # noqa: F401 (re-exported: the figures take them from here)

MODEL = "#0072B2"  #: the model (Okabe-Ito blue)
WORSE = "#D55E00"  #: a loss against a reference, a flagged condition (Okabe-Ito vermillion)
CEILING = "#009E73"  #: positive references: the ceiling line and its band (Okabe-Ito green)
REAL = "#222222"  #: observed perturbed cells
CONTROL = "#A0A0A0"  #: control cells
NEUTRAL = "#6E6E6E"  #: "no significant difference"

#: Fixed colours and markers of the baselines distgen ships (so a page never reshuffles them).
_KNOWN: dict[str, tuple[str, str]] = {
    "control": ("#4D4D4D", "s"),
    "mean_perturbation": ("#E69F00", "^"),
    "additive": ("#CC79A7", "D"),
    "linear": ("#A6761D", "v"),
    "non_control_mean": ("#882255", "P"),
    "noncontrol_mean": ("#882255", "P"),  # the registered name (distgen.models.baselines.noncontrol_mean)
    "matching_mean": ("#44AA99", "X"),
    "interpolated_duplicate": ("#117733", "h"),
}
_PALETTE = ("#332288", "#999933", "#AA4499", "#88CCEE", "#661100", "#6699CC", "#DDCC77", "#AA4466")
_MARKERS = ("p", "*", "<", ">", "8", "H", "d", "P")


@dataclass(frozen=True)
class Look:
    """How one source is drawn: colour, marker and its label in legends."""

    color: str
    marker: str
    label: str


def model_look(name: str = "model") -> Look:
    return Look(MODEL, "o", name)


def baseline_look(name: str) -> Look:
    """The colour and marker of baseline ``name`` (stable across pages and runs)."""
    if name in _KNOWN:
        color, marker = _KNOWN[name]
    else:
        h = zlib.crc32(name.encode())
        color, marker = _PALETTE[h % len(_PALETTE)], _MARKERS[(h // len(_PALETTE)) % len(_MARKERS)]
    return Look(color, marker, name)


def ceiling_look(name: str = "ceiling") -> Look:
    return Look(CEILING, "|", name)


@dataclass(frozen=True)
class MetricInfo:
    """What a report needs to know about a metric: direction, family, a one-line description, and the range of its
    values (``MetricCapabilities.bounds``: the report's intervals are cut there; unbounded for an unknown name)."""

    name: str
    higher_is_better: bool | None
    family: str
    level: str
    description: str
    bounds: tuple[float, float] = (-math.inf, math.inf)

    @property
    def direction(self) -> str:
        if self.higher_is_better is None:
            return "direction unknown"
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def label(self) -> str:
        """The name as a figure writes it (``short_label``: a plugin metric's long or non-Latin name is cut and escaped
        as a condition's is; tables keep the whole name). ``metric_labels`` keeps the names of one figure distinct."""
        return short_label(self.name)

    @property
    def axis_label(self) -> str:
        """``"mse (lower is better)"``: every value axis of a report says which way is good (the name as ``label``)."""
        return f"{self.label} ({self.direction})"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` (NaN is never better; nothing is without a direction)."""
        if a != a or b != b or self.higher_is_better is None:  # NaN, or a diagnostic/unknown metric
            return False
        return a > b if self.higher_is_better else a < b


#: Family titles for the ``level`` capability of the built-in metrics (a metric may declare ``family``).
FAMILY_OF_LEVEL = {
    "pseudobulk": "Pseudobulk expression",
    "de": "Differential expression",
    "global": "Across perturbations",
    "distribution": "Distributions of cells",
}


def metric_labels(names: Iterable[str]) -> dict[str, str]:
    """``{metric: how figures write it}``: the names through ``short_labels`` as condition labels go (cut, escaped,
    distinct: two long names alike at both ends get a digest). Before, metric names reached titles and axes whole: a
    plugin metric named in a script no font draws was a row of boxes, a 300-character name a figure's width."""
    unique = list(dict.fromkeys(map(str, names)))
    return dict(zip(unique, short_labels(unique)))


def metric_info(name: str) -> MetricInfo:
    """Direction, family and description of a registered metric (unknown names: direction unknown)."""
    from distgen.evaluation.metrics import metrics

    try:
        cls = metrics.get(name)
    except KeyError:
        return MetricInfo(name, None, "Other", "unknown", "")
    caps = getattr(cls, "capabilities", None)
    level = metric_level(cls)
    family = FAMILY_OF_LEVEL.get(level, level.capitalize())
    doc = (cls.__doc__ or "").strip().splitlines()
    hib = getattr(caps, "higher_is_better", None)
    if getattr(caps, "diagnostic", False):
        hib = None  # a diagnostic quantity has no better direction
    bounds = tuple(getattr(caps, "bounds", (-math.inf, math.inf)))
    return MetricInfo(name, None if hib is None else bool(hib), family, level, doc[0] if doc else "", bounds)  # type: ignore[arg-type]


#: The level of a built-in metric, told by the module that defines it.
LEVEL_OF_MODULE = {
    "pseudobulk": "pseudobulk",
    "celleval2_expr": "pseudobulk",
    "discrimination": "pseudobulk",
    "de_metrics": "de",
    "celleval2_de": "de",
    "celleval2_direction": "de",
    "distributional": "distribution",
}


def metric_level(cls: Any) -> str:
    """``pseudobulk``, ``de``, ``distribution`` or ``global`` (a statistic across perturbations); plugins: ``unknown``."""
    caps = getattr(cls, "capabilities", None)
    if getattr(caps, "min_perturbations", 1) > 1:
        return "global"
    module = str(getattr(cls, "__module__", ""))
    if not module.startswith("distgen.evaluation.metrics."):
        return "unknown"
    return LEVEL_OF_MODULE.get(module.rsplit(".", 1)[-1], "unknown")


#: The matplotlib theme of every report figure (print-sized text, no chart junk).
RC: dict[str, Any] = {
    "font.family": [BASE],  # and the installed fonts that draw the labels' other characters (``theme(texts)``)
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "x",
    "grid.color": "#E6E6E6",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.edgecolor": "#555555",
    "axes.linewidth": 0.7,
    # labels are data (a condition "dose $x_1$" or "$\\alpha$ 5"): never mathtext, which set them as formulas or failed
    # to draw at all (ParseFatalException: Unknown symbol), ending the evaluation before summary.json was written
    "text.parse_math": False,
    "svg.fonttype": "path",  # text as outlines: the page looks the same without any installed font
    "svg.hashsalt": "distgen-report",  # deterministic ids
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.06,
}


@contextmanager
def theme(texts: Iterable[str] = ()) -> Iterator[None]:
    """The report theme for the figures made and saved inside the block (restored afterwards).

    ``texts``: the labels the figures may draw (conditions, references, genes, metric names): installed fonts that draw
    the characters of theirs DejaVu Sans lacks (CJK, say) follow it in ``font.family`` (``glyphs.fallback_families``);
    characters no installed font draws are written as escapes by ``short_label``. Figures are
    ``matplotlib.figure.Figure`` objects, never pyplot's: no backend is switched and nothing is left open in a user's
    session.
    """
    import matplotlib

    rc: Any = {**RC, "font.family": [BASE, *fallback_families(texts)]}
    with matplotlib.rc_context(rc):
        yield


def value_axis(ax: Any, axis: str = "x", nbins: int = 5) -> None:
    """Few, readable ticks on a value axis (scientific notation for very small or large values)."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(nbins))
    ax.ticklabel_format(axis=axis, style="sci", scilimits=(-3, 4), useMathText=False)  # mathtext is off in the theme
