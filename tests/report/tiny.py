"""A tiny evaluation in memory (seeded tensors, a few fast metrics) and the checks every report page must pass."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import torch

from distgen.evaluation import EvalData, Population, run_metrics
from distgen.evaluation.calibration import ceiling_data, summarise
from distgen.evaluation.io import flag_invalid
from distgen.report import ReportInputs

METRICS = ["mse", "pearson_delta", "discrimination_score_l1", "overlap_at_N", "edistance", "de_spearman_sig"]


def tiny_data(seed: int = 0, n_perts: int = 6, genes: int = 24, cells: int = 30, n_ctrl: int = 60, tiny_pert: bool = True) -> EvalData:
    """Real and predicted cells: condition ``p`` shifts 4 genes by ``0.4 * (p + 1)`` (so response strength grows with p).

    The prediction gets each shift at 70% and extra noise; with ``tiny_pert`` the last condition has one real cell.
    """
    g = torch.Generator().manual_seed(seed)
    perts = tuple(f"P{i}" for i in range(n_perts))
    base = torch.rand(genes, generator=g) * 2 + 0.5

    def draw(n: int, shift: torch.Tensor, noise: float) -> torch.Tensor:
        return (base + shift + noise * torch.randn(n, genes, generator=g)).clamp_min(0)

    def population(scale: float, noise: float) -> Population:
        xs = []
        for p in range(n_perts):
            shift = torch.zeros(genes)
            shift[(4 * p) % genes : (4 * p) % genes + 4] = 0.4 * (p + 1) * scale
            n = 1 if (tiny_pert and p == n_perts - 1 and scale == 1.0) else cells
            xs.append(draw(n, shift, noise))
        return _pop(xs, draw(n_ctrl, torch.zeros(genes), noise))

    def _pop(xs: list[torch.Tensor], ctrl: torch.Tensor) -> Population:
        counts = torch.tensor([x.shape[0] for x in xs])
        offsets = torch.zeros(n_perts + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(counts, 0)
        return Population(torch.cat(xs), offsets, ctrl)

    data = EvalData(real=population(1.0, 0.3), pred=population(0.7, 0.45), perts=perts, targets=tuple((p,) for p in perts),
                    genes=tuple(f"G{i}" for i in range(genes)))
    flag_invalid(data)
    return data


def control_prediction(data: EvalData) -> EvalData:
    """The 'no change' baseline: each condition predicted by real control cells."""
    ctrl = data.real.control
    xs = [ctrl[torch.arange(int(n)) % ctrl.shape[0]] for n in data.real.counts.tolist()]
    new = EvalData(real=data.real, pred=Population(torch.cat(xs), data.real.offsets.clone(), ctrl), perts=data.perts,
                   targets=data.targets, genes=data.genes)
    flag_invalid(new)
    return new


def tiny_inputs(cells: bool = True) -> ReportInputs:
    """Model, a control baseline, its exact copy (an alias), the half-split ceiling and the summary."""
    data = tiny_data()
    model = run_metrics(data, METRICS)
    ctrl = run_metrics(control_prediction(data), METRICS)
    copy = run_metrics(control_prediction(data), METRICS)
    ceiling = run_metrics(ceiling_data(data), METRICS)
    summary = {"pred": "<memory>", "real": "<memory>", "n_genes": len(data.genes), "metrics": summarise(model, {"control": ctrl, "no_change": copy}, ceiling),
               "notes": ["P5: all metrics NaN (only 1 real cell(s); at least 2 are needed)"]}
    return ReportInputs.from_evaluation(model, {"control": ctrl, "no_change": copy}, ceiling, summary, cells=data if cells else None)


class _Tags(HTMLParser):
    """Checks nesting and collects every attribute value that could point somewhere."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "action", "data", "poster", "background") and v is not None:
                self.links.append((tag, k, v))
            if k == "id" and v:
                self.ids.append(v)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def check_page(html: str, sections: list[str]) -> list[bytes]:
    """Assert ``html`` is a well-formed, self-contained page with ``sections``; returns the decoded images."""
    assert html.startswith("<!DOCTYPE html>")
    parser = _Tags()
    parser.feed(html)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    assert {"html", "head", "body", "title"} <= parser.seen
    for s in sections:
        assert s in parser.ids, f"section {s!r} missing; ids: {parser.ids}"
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html), "a page must not load anything"
    assert not re.search(r"url\(", html), "no CSS url() references"
    images = []
    for tag, attr, value in parser.links:
        if attr == "href":
            assert value.startswith("#") and value[1:] in parser.ids, f"<{tag} href={value!r}> leaves the page"
            continue
        m = re.fullmatch(r"data:(image/png|image/svg\+xml);base64,([A-Za-z0-9+/=]+)", value)
        assert m, f"<{tag} {attr}=...> is not an embedded image: {value[:60]!r}"
        raw = base64.b64decode(m.group(2), validate=True)
        decode_image(m.group(1), raw)
        images.append(raw)
    return images


def decode_image(mime: str, raw: bytes) -> None:
    """A PNG decodes to pixels; an SVG parses as XML and refers to nothing but itself and embedded rasters."""
    import matplotlib.image as mpimg

    if mime == "image/png":
        pixels = mpimg.imread(io.BytesIO(raw), format="png")
        assert pixels.shape[0] > 10 and pixels.shape[1] > 10
        return
    root = ET.fromstring(raw)
    assert root.tag.endswith("svg")
    for el in root.iter():
        for k, v in el.attrib.items():
            if k.endswith("href"):
                if v.startswith("#"):
                    continue
                m = re.fullmatch(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)", v)
                assert m, f"SVG refers outside itself: {v[:60]!r}"
                decode_image("image/png", base64.b64decode(m.group(1)))
