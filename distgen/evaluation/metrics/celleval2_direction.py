"""cell-eval2's direction metrics (``de_wilcoxon_direction_*``): does the prediction call the right SIGN?

Over the genes tested on both sides, a real gene *adjudicates* when its fold change is non-zero and
finite, and a predicted call *matches* when it is adjudicated, committed (non-zero, finite) and of the
same sign. Per perturbation, with the perturbation's own gene left out (``_excluded`` variants):
``n_conf`` real significant genes, ``q`` the share of their majority direction, ``d = max(1 - q,
0.05)``; ``n_pred`` predicted significant adjudicated genes, ``k`` of them matching. The *purity
curve* walks the predicted genes in cell-eval2's order (significant first, then adjusted p, p, |lfc|
descending, gene name) and ``k*`` is the deepest point whose running match rate reaches a floor.
``direction_reach_raw`` (floor 0.9) and ``direction_fidelity_yield_raw`` (``k / max(n_pred,
n_conf)``) are the two ``vcc2026`` members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.capabilities import AT_MOST_ONE, FRACTION, NONNEGATIVE, UNBOUNDED
from distgen.evaluation.metrics.celleval2_de import PreparedDE
from distgen.evaluation.metrics.celleval2_de import _define as _define_in
from distgen.evaluation.metrics.celleval2_settings import Settings

REACH_PURITY_FLOOR = 0.9


def _defined(x: Tensor) -> Tensor:
    return ~torch.isnan(x) & (x != 0)


def _frame(prep: PreparedDE, exclude_own: bool) -> tuple[Tensor, Tensor]:
    """``(rows [P, G], match [P, G])``: genes in both tables (own gene out if asked) and matching calls."""
    rows = (prep.real.tested & prep.pred.tested)[None].expand_as(prep.own) & prep.scored[:, None]
    if exclude_own:
        rows = rows & ~prep.own
    lr, lp = prep.real.lfc, prep.pred.lfc
    match = _defined(lr) & _defined(lp) & (torch.sign(lr) == torch.sign(lp))
    return rows, match & rows


def reference_stats(prep: PreparedDE) -> tuple[Tensor, Tensor, Tensor]:
    """``(n_conf [P], q [P] (NaN: no adjudicated vote), d [P])`` over the real table, own gene out."""
    real = prep.sig_real & ~prep.own
    lr = prep.real.lfc
    votes = real & _defined(lr)
    n_votes = votes.sum(-1).to(torch.float64)
    n_pos = (votes & (lr > 0)).sum(-1).to(torch.float64)
    q = torch.where(n_votes > 0, torch.maximum(n_pos, n_votes - n_pos) / n_votes.clamp_min(1), torch.full_like(n_votes, float("nan")))
    d = torch.where(torch.isnan(q), q, torch.clamp(1.0 - q, min=0.05))
    return real.sum(-1), q, d


def components(prep: PreparedDE, s: Settings) -> dict[str, Tensor]:
    """``n_conf, q, d, n_pred, k`` per perturbation (own gene out)."""
    rows, match = _frame(prep, exclude_own=True)
    scored = rows & prep.sig_pred & _defined(prep.real.lfc)
    n_conf, q, d = reference_stats(prep)
    return {"n_conf": n_conf.to(torch.float64), "q": q, "d": d, "n_pred": scored.sum(-1).to(torch.float64),
            "k": (scored & match).sum(-1).to(torch.float64)}


def _div(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den == 0, torch.full_like(num, float("nan")), num / torch.where(den == 0, torch.ones_like(den), den))


def family(prep: PreparedDE, s: Settings) -> dict[str, Tensor]:
    """The fidelity/yield/coverage family of cell-eval2 (``_fidelity_family``; computed once, its members read it)."""
    if "direction_family" not in prep.cache:
        prep.cache["direction_family"] = _family(prep, s)
    return prep.cache["direction_family"]


def _family(prep: PreparedDE, s: Settings) -> dict[str, Tensor]:
    c = components(prep, s)
    n_conf, n_pred, k, q, d = c["n_conf"], c["n_pred"], c["k"], c["q"], c["d"]
    zero_conf, q_undef, zero_pred = n_conf == 0, torch.isnan(q), n_pred == 0
    nan = torch.full_like(q, float("nan"))
    fid_raw = _div(k, n_pred)
    coverage = _div(n_pred, n_conf)
    corrected = (fid_raw - q) / d
    empty = torch.where(zero_pred, torch.ones_like(q), torch.zeros_like(q))
    fidelity = torch.where(zero_conf, empty, torch.where(q_undef | zero_pred, nan, corrected))
    fy_core = torch.where(zero_pred, torch.zeros_like(q), torch.clamp(coverage, max=1.0) * corrected)
    fid_yield = torch.where(zero_conf, empty, torch.where(q_undef, nan, fy_core))
    return {
        "direction_fidelity": fidelity,
        "direction_fidelity_raw": fid_raw,
        "direction_coverage": coverage,
        "direction_yield_raw": _div(k, n_conf),
        "direction_yield": torch.where(zero_conf | q_undef, nan, (k - q * n_pred) / (n_conf * d)),
        "direction_fidelity_yield": fid_yield,
        "direction_fidelity_yield_raw": _div(k, torch.maximum(n_pred, n_conf)),
    }


def purity_order(prep: PreparedDE, alpha: float) -> np.ndarray:
    """``[P, G]`` each perturbation's genes in cell-eval2's purity-curve order (computed once per ``alpha``).

    Significant first, then adjusted p and p ascending, ``|lfc|`` descending, gene name: a total
    order (names are unique), so the order of any subset of genes is this order filtered.
    """
    key = f"purity_order/{alpha}"
    if key not in prep.cache:
        sig = (torch.nan_to_num(prep.pred.fdr, nan=2.0) < alpha).cpu().numpy()
        rank_q = torch.nan_to_num(prep.pred.fdr, nan=float("inf")).cpu().numpy()
        rank_p = torch.nan_to_num(prep.pred.pvalue, nan=float("inf")).cpu().numpy()
        abs_lfc = torch.nan_to_num(prep.pred.lfc.abs(), nan=float("-inf")).cpu().numpy()
        name = np.broadcast_to(prep.gene_order.cpu().numpy(), sig.shape)
        # np.lexsort: the last key is the primary one; each row sorted along the genes
        prep.cache[key] = np.lexsort((name, -abs_lfc, rank_p, rank_q, ~sig), axis=-1)
    return prep.cache[key]


def k_star(prep: PreparedDE, s: Settings, universe: str, exclude_own: bool, floor: Tensor) -> Tensor:
    """``[P]`` the deepest count of adjudicated predicted genes whose running match rate reaches ``floor[p]``."""
    rows, match = _frame(prep, exclude_own)
    if universe == "adjudicated":
        rows = rows & prep.sig_real
    order = purity_order(prep, s.p_adj_threshold)
    kept = np.take_along_axis(rows.cpu().numpy(), order, -1)  # the walk visits these genes, in this order
    den = np.cumsum(np.take_along_axis(_defined(prep.real.lfc).cpu().numpy(), order, -1) & kept, -1)
    hit = np.cumsum(np.take_along_axis(match.cpu().numpy(), order, -1) & kept, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(den > 0, hit / np.maximum(den, 1), np.nan)
    ok = kept & (purity >= floor.cpu().numpy()[:, None])  # a NaN floor reaches nothing
    return torch.from_numpy(np.where(ok, den, 0).max(-1, initial=0).astype(np.float64)).to(rows.device)  # the walk ran on the host


def _family_reader(column: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        return family(prep, s)[column], {}

    return fn


def _precision(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    rows, match = _frame(prep, exclude_own=False)
    m = rows & prep.sig_pred
    n_denom = (m & _defined(prep.real.lfc)).sum(-1).to(torch.float64)
    return _div((m & match).sum(-1).to(torch.float64), n_denom), {}


def _sensitivity(universe: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        floor = torch.full((prep.own.shape[0],), 1.0 - s.p_adj_threshold / 2.0, dtype=torch.float64, device=prep.own.device)
        ks = k_star(prep, s, universe, exclude_own=False, floor=floor)
        n_conf = prep.sig_real.sum(-1).to(torch.float64)
        return _div(ks, n_conf), {}

    return fn


def _reach(universe: str, corrected: bool) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        n_conf, q, _ = reference_stats(prep)
        alpha = s.p_adj_threshold
        floor = q + (1.0 - alpha) * (1.0 - q) if corrected else torch.full_like(q, REACH_PURITY_FLOOR)
        ks = k_star(prep, s, universe, exclude_own=True, floor=floor)
        val = _div(ks, n_conf.to(torch.float64))
        if corrected:
            val = torch.where(torch.isnan(q), torch.full_like(val, float("nan")), val)
        return val, {}

    return fn



def _define(name: str, doc: str, fn: Any, **kw: Any) -> Any:
    """``celleval2_de._define`` with the class set on this module."""
    return _define_in(name, doc, fn, module=__name__, **kw)


#: What each family member's definition guarantees (``MetricCapabilities.bounds``): ``k`` counts predicted calls, so it
#: is at most ``n_pred`` but can exceed ``n_conf`` (``yield_raw``, ``coverage`` unbounded above); the chance-corrected
#: ``(k / n_pred - q) / d`` is at most 1 (``q >= 1/2``, ``d >= 1 - q``), and ``direction_yield``'s ``n_pred / n_conf``
#: factor leaves it unbounded. The ``*_universe`` / ``*_unbounded`` curves walk every tested gene: unbounded above.
_FAMILY_BOUNDS = {"direction_fidelity": AT_MOST_ONE, "direction_fidelity_raw": FRACTION, "direction_coverage": NONNEGATIVE,
                  "direction_yield": UNBOUNDED, "direction_yield_raw": NONNEGATIVE, "direction_fidelity_yield": AT_MOST_ONE,
                  "direction_fidelity_yield_raw": FRACTION}

_define("de_wilcoxon_direction_precision", "Fraction of the predicted significant adjudicated genes with the right sign.",
          _precision, gate="adjudicable", worst=0.0, bounds=FRACTION)
_define("de_wilcoxon_direction_sensitivity", "Deepest purity-0.975 prefix of predicted calls among the real significant genes / n_conf.",
          _sensitivity("adjudicated"), gate="sig_set", bounds=FRACTION)
_define("de_wilcoxon_direction_sensitivity_universe", "As direction_sensitivity, the curve over every tested gene (unbounded above).",
          _sensitivity("all"), gate="sig_set", bounds=NONNEGATIVE)
for _col, _doc in (
    ("direction_fidelity", "Chance-corrected sign accuracy of the predicted significant calls: (k/n_pred - q) / d."),
    ("direction_fidelity_raw", "Sign accuracy of the predicted significant calls, k / n_pred."),
    ("direction_coverage", "n_pred / n_conf: how many calls the prediction makes per real significant gene."),
    ("direction_yield", "(k - q n_pred) / (n_conf d): chance-corrected correct calls per real significant gene (signed)."),
    ("direction_yield_raw", "k / n_conf: correct calls per real significant gene."),
    ("direction_fidelity_yield", "min(1, coverage) x chance-corrected fidelity."),
    ("direction_fidelity_yield_raw", "k / max(n_pred, n_conf): correct calls over the larger of the two sets (vcc2026)."),
):
    _define(f"de_wilcoxon_{_col}", _doc, _family_reader(_col), diagnostic=_col == "direction_coverage", bounds=_FAMILY_BOUNDS[_col])
_define("de_wilcoxon_direction_reach", "k* / n_conf with the chance-corrected purity floor q + 0.95 (1 - q).",
          _reach("adjudicated", corrected=True), bounds=FRACTION)
_define("de_wilcoxon_direction_reach_raw", "k* / n_conf with purity floor 0.9 over the real significant genes (vcc2026).",
          _reach("adjudicated", corrected=False), bounds=FRACTION)
_define("de_wilcoxon_direction_reach_unbounded", "As direction_reach over every tested gene (unbounded above).",
          _reach("all", corrected=True), bounds=NONNEGATIVE)
_define("de_wilcoxon_direction_reach_unbounded_raw", "As direction_reach_raw over every tested gene (unbounded above).",
          _reach("all", corrected=False), bounds=NONNEGATIVE)
