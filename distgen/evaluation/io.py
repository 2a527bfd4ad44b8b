"""From labelled populations (``Cells``) to what metrics see (``EvalData``), validating as we go.

No files here: ``distgen.data.layout`` reads and writes them. A prediction and its truth must have
the same genes (a different order is aligned, with a note), log-normalised values and control
cells; the prediction may not hold conditions the truth lacks. Bad input gives an error naming
what is wrong and how to fix it, or, per perturbation, NaN with a reason (``EvalData.invalid``).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.errors import InputDataError
from distgen.evaluation.evaldata import EvalData, Population
from distgen.types import Cells
from distgen.types.layout import CONTROL_LABELS
from distgen.wording import counted, first_of

#: Largest value of log1p-normalised expression in practice (log1p of 1e8); larger fractional values are not logged.
LOG_MAX = 20.0
#: Fewest cells of a group that is scored: a perturbation below it gets NaN metrics (``flag_invalid``), a file's
#: controls below it are refused (``check_controls``: every delta of every perturbation is taken from their mean).
MIN_CELLS = 2


class ScaleMismatchError(InputDataError):
    """Prediction and truth hold expression on different scales (raw counts, normalised, log-normalised); exit code 2."""


#: Rows of a file the value-scale checks read (``value_scale``, ``check_scale``, ``check_counts``).
SCALE_SAMPLE_ROWS = 2000


def sample_rows(x: Any, n: int = SCALE_SAMPLE_ROWS) -> Any:
    """Up to ``n`` rows of ``x`` spread evenly over all of it (first and last included), not its first ``n``.

    Files are often sorted by group (controls first): the first rows can be one group on its own scale. A scipy sparse
    matrix gives its rows as a sparse matrix (``_sampled``).
    """
    total = x.shape[0] if hasattr(x, "shape") else len(x)  # a sparse matrix has no len()
    if total <= n:
        return x
    return x[np.linspace(0, total - 1, n).round().astype(np.int64)]


#: How far a raw count may lie from the nearest integer: cell-eval2 0.20.0's integrality tolerance (``cell_eval2.norm._INT_ATOL``,
#: absolute), as the values' own dtype holds it (``count_atol``). Counts a float64 transform left dust on (``100.0000005``,
#: ``0.9999995``) are counts; ``0.5`` or a value ``1e-5`` off are not. Decides counts everywhere: ``check_counts``,
#: ``value_scale``, ``check_scale``, ``stored_scales.looks``, ``normalization.signature``.
COUNT_ATOL = 1e-6


def count_atol(dtype: Any) -> float:
    """``COUNT_ATOL`` as a value of ``dtype`` holds it (float32's ``1e-6`` is ``9.99999997e-07``), as cell-eval2 compares."""
    dt = np.dtype(dtype)
    return float(dt.type(COUNT_ATOL)) if np.issubdtype(dt, np.floating) else COUNT_ATOL


def off_integer(values: np.ndarray, atol: float) -> np.ndarray:
    """Which values lie further than ``atol`` from the nearest integer (NaN and infinities do not: they are judged elsewhere).

    Computed in the values' own floating dtype, as cell-eval2 computes it (no float64 copy of a float32 sample);
    integers are never off. A scipy sparse matrix gives a sparse matrix of its format and shape, True where a stored value
    is off (from its stored values alone, duplicates summed, on a copy: an implicit zero is an integer); it raised TypeError."""
    if _is_sparse(values):
        sparse: Any = values  # a scipy sparse matrix or array: not an ndarray
        out = sparse.tocoo(copy=True)  # every format (LIL and DOK hold no flat data); a duplicate's parts are not its value
        out.sum_duplicates()
        out.data = off_integer(out.data, atol)
        return out.asformat(sparse.format)  # type: ignore[no-any-return]
    v = np.asarray(values)
    if not np.issubdtype(v.dtype, np.floating):
        return np.zeros(v.shape, dtype=bool)
    with np.errstate(invalid="ignore"):  # one temporary the size of ``v`` (run on up to 2,000 whole rows), not three
        d = np.rint(v)
        np.subtract(v, d, out=d)
        np.abs(d, out=d)
        return d > v.dtype.type(atol)


def _is_sparse(x: Any) -> bool:
    """Whether ``x`` is a scipy sparse matrix or array (scipy imported only when ``x`` comes from it)."""
    if not type(x).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return bool(scipy.sparse.issparse(x))


def _sampled(x: Any) -> np.ndarray:
    """The values of up to ``SCALE_SAMPLE_ROWS`` rows of ``x`` (``sample_rows``) that the scale checks judge: a dense
    ``x``'s rows as an array; a scipy sparse ``x``'s stored values (``data``, duplicates summed, never densified) and one
    0 when the rows hold an implicit zero, in the matrix's dtype. Every check asks only for the values' minimum, maximum
    and integrality, which one zero answers for all the implicit ones (a sparse input raised TypeError). A ``ValueSample``
    is read as drawn (its ``raw``: no second draw)."""
    if isinstance(x, ValueSample):
        return x.raw
    if isinstance(x, torch.Tensor):  # a tensor that requires grad has no numpy view (check_counts raised RuntimeError)
        return np.asarray(sample_rows(x.detach()).cpu().numpy())
    if not _is_sparse(x):
        return np.asarray(sample_rows(x))
    rows = sample_rows(x.tocsr())
    if not rows.has_canonical_format:  # summed on a copy: a CSR x of at most SCALE_SAMPLE_ROWS rows is the caller's matrix
        rows = rows.copy()
        rows.sum_duplicates()
    values = np.asarray(rows.data)
    if rows.nnz < rows.shape[0] * rows.shape[1]:
        values = np.append(values, np.zeros(1, dtype=values.dtype))
    return values


class ValueSample:
    """The values of up to ``SCALE_SAMPLE_ROWS`` rows of one file (``_sampled``: ``sample_rows``), drawn ONCE and passed to
    every check of that file that reads them (``value_scale``, ``check_scale``, ``check_same_scale``,
    ``normalization.signature``/``check_same_normalization``: ``normalization.check_files`` builds one per file), with the
    float64 copy and the facts those checks share computed once, on first use. Each check decides from it exactly as from
    the file itself (a sample drawn and converted per check cost ~1/4 of a warm Kang evaluation)."""

    def __init__(self, x: Any) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        self.raw = _sampled(x)  # the file's dtype; a sparse x: its stored values and one zero
        self.atol = count_atol(self.raw.dtype)

    @functools.cached_property
    def f64(self) -> np.ndarray:
        """The sample in float64 (rows kept for a dense file)."""
        return np.asarray(self.raw, dtype=np.float64)

    @functools.cached_property
    def all_finite(self) -> bool:
        return bool(np.isfinite(self.f64).all())

    @functools.cached_property
    def finite(self) -> np.ndarray:
        """The finite values of ``f64``, flat (no copy when every value is finite)."""
        return self.f64.reshape(-1) if self.all_finite else self.f64[np.isfinite(self.f64)]

    @functools.cached_property
    def whole(self) -> bool:
        """Whether every finite value lies within ``COUNT_ATOL`` (in the file's dtype) of an integer."""
        finite = self.finite
        return not bool(off_integer(finite[:5000], self.atol).any()) and not bool(off_integer(finite, self.atol).any())


def _sample_of(x: Any) -> ValueSample:
    return x if isinstance(x, ValueSample) else ValueSample(x)


def value_scale(x: torch.Tensor | np.ndarray | ValueSample) -> tuple[str, float]:
    """(``"counts"`` | ``"log"`` | ``"normalized"`` | ``"empty"``, max) of the finite values of up to 2,000 rows of ``x`` (``sample_rows``;
    a ``ValueSample`` of the file is used as drawn).

    Integer-valued (within ``COUNT_ATOL`` of an integer) with some value above 1 is ``counts``; fractional is ``log``
    below ``LOG_MAX`` and ``normalized`` (normalised but not log-transformed) above; all zeros/ones says nothing (``empty``).
    """
    s = _sample_of(x)
    finite = s.finite
    if not finite.size:
        return "empty", 0.0
    vmax = float(finite.max())
    if s.whole:  # a fraction early on settles it (log data); else every value is checked
        return ("counts", vmax) if np.rint(vmax) > 1 else ("empty", vmax)
    return ("log" if vmax < LOG_MAX else "normalized"), vmax


_SCALE_WORDS = {"counts": "raw counts (integers)", "log": "log-normalised", "normalized": "normalised but not log-transformed"}


def check_same_scale(pred: torch.Tensor | np.ndarray | ValueSample, truth: torch.Tensor | np.ndarray | ValueSample, name: str = "pred") -> None:
    """Refuse a prediction and a truth on different value scales (``ScaleMismatchError`` with the fix).

    Scored as they are, count-scale predictions against log-scale truth give an mse in the billions
    and no warning; this names both scales (with their maxima) and what to apply to which file. A side whose values are all
    zeros and ones (``value_scale``'s ``empty``) is compared with none, but raw counts beside it are refused (they were
    scored as log-normalised values where the counts' own check refuses integers above 30 only: ``eval_data``); a side
    without a finite value (NaN or inf only, also ``empty``) is left to the check that names those (``check_controls``).
    """
    pred, truth = _sample_of(pred), _sample_of(truth)
    (ps, pmax), (ts, tmax) = value_scale(pred), value_scale(truth)
    if ps == ts:
        return
    if "counts" in (ps, ts) and (below := _below_zero_words(pred if ps == "counts" else truth)):  # not counts, whatever else
        side = name if ps == "counts" else "real"
        raise PairScaleError(
            f"the {side} cells hold whole numbers with values below 0 ({below}): neither raw counts nor log-normalised "
            "expression, which distgen evaluates; write that file's log-normalised expression (scanpy.pp.normalize_total "
            "then scanpy.pp.log1p of its raw counts) and evaluate again", side, "lognorm")
    if "empty" in (ps, ts):  # one side says nothing of its scale; raw counts beside it are still raw counts
        if "counts" not in (ps, ts):
            return
        side, vmax, other, x = (name, pmax, "real", truth) if ps == "counts" else ("real", tmax, name, pred)
        held = _whole_values_words(x)
        if held is None:  # no finite value (NaN or inf only): the evaluation names those (check_controls)
            return
        raise PairScaleError(
            f"the {side} cells are raw counts (integers, max {vmax:.4g}) and the {other} cells hold {held}, which say nothing "
            f"of their scale: distgen evaluates log-normalised expression: apply scanpy.pp.normalize_total then "
            f"scanpy.pp.log1p to the {side} cells", side, "lognorm")
    fix = {"counts": "scanpy.pp.normalize_total then scanpy.pp.log1p", "normalized": "scanpy.pp.log1p"}
    wrong, side = (ps, name) if ts == "log" else (ts, "real") if ps == "log" else (ps, name)
    how = f"apply {fix[wrong]} to the {side} cells" if wrong in fix else "bring both files to the same scale"
    raise PairScaleError(
        f"the {name} cells are {_SCALE_WORDS[ps]} (max {pmax:.4g}) but the real cells are {_SCALE_WORDS[ts]} (max {tmax:.4g}); "
        f"scores across scales are meaningless: {how} (distgen evaluates log-normalised expression)",
        "real" if side == "real" else name, "lognorm")


def check_holds_prediction(x: torch.Tensor | np.ndarray, name: str = "pred", scale: str = "lognorm", context: str | None = None) -> None:
    """Refuse a prediction whose ``X`` holds only zeros, or only values within ``COUNT_ATOL`` of 0 (zeros by the count rule:
    such dust is no prediction either), NaN aside (``ScaleMismatchError``): no prediction is in it (a tool may keep its
    predictions in a layer or ``obsm``). The one rule of the CLI's file check (``normalization.check_control_scale``) and
    of the Python API (``eval_data``, which ``distgen.evaluation.score`` calls). An ``X`` of NaN only is left to the check
    that names NaN. ``context``: ``x`` is that context's cells (scored per context), named in the message beside their
    cell count (the context's, not the file's)."""
    x = torch.as_tensor(x).detach()  # float() of a tensor that requires grad warns
    if not x.numel() or x.dtype == torch.bool:
        return
    lo, hi = torch.aminmax(x)  # one pass, no copy (the common case: a real prediction is past the bound at once)
    top = max(-float(lo), float(hi))
    if top != top:  # a NaN somewhere: judged on the other values
        if bool(torch.isnan(x).all()):
            return
        top = float(torch.nan_to_num(x, nan=0.0).abs().max())
    atol = float(torch.tensor(COUNT_ATOL, dtype=x.dtype)) if x.is_floating_point() else COUNT_ATOL  # count_atol, in x's dtype
    if top > atol:
        return
    dust = f" (or values within {COUNT_ATOL:g} of 0, at most {top:.3g} from it)" if top > 0 else ""
    where = f" in context {context!r}" if context is not None else ""  # the cells counted below are that context's
    raise ScaleMismatchError(
        f"the {name} file's X holds only zeros{where}{dust} ({x.shape[0]} cells x {x.shape[1]} genes): no prediction is in it (a tool may "
        f"keep its predictions in a layer or in obsm); set adata.X to the predicted expression "
        f"({'log-normalised' if scale == 'lognorm' else 'raw counts'}, with the truth's control cells beside it) and write the file again")


def _below_zero_words(x: Any) -> str | None:
    """``"min -3, max 5"`` of a side ``value_scale`` calls ``counts`` (whole numbers above 1) when some are below 0 (more
    than ``COUNT_ATOL``), else None. Such values are not called "raw counts": that fix ("apply normalize_total then
    log1p") gives NaN below 0."""
    sample = np.asarray(_sampled(x), dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    if not finite.size or float(finite.min()) >= -COUNT_ATOL:
        return None
    return f"min {float(finite.min()):.4g}, max {float(finite.max()):.4g}"


def _whole_values_words(x: Any) -> str | None:
    """What an ``empty`` side (``value_scale``: whole numbers up to 1) holds, in words with its finite range: "only zeros and
    ones (...)", or "only whole numbers of at most 1 (min -1, max 0)" with one below 0; None without a finite value."""
    finite = _sample_of(x).finite
    if not finite.size:
        return None
    low, high = float(finite.min()) + 0.0, float(finite.max()) + 0.0  # + 0.0: -0.0 prints as 0
    if low >= -COUNT_ATOL:
        return f"only zeros and ones (or values within {COUNT_ATOL:g} of them, max {high:.4g})"
    return f"only whole numbers of at most 1 (min {low:.4g}, max {high:.4g})"


#: How ``generated_range_note`` begins (after a context's ``ctx: ``): ``distgen sweep`` marks such runs' variants.
GENERATED_RANGE = "the model's predictions reach"


def generated_range_note(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> str | None:
    """A note when generated log-space values leave the range log-normalised expression can take (a diverging model)."""
    (ps, pmax), (ts, tmax) = value_scale(pred), value_scale(truth)
    if ts == "log" and ps == "normalized":
        return (f"{GENERATED_RANGE} {pmax:.4g}, above any log-normalised value (the truth's maximum is {tmax:.4g}): "
                "the generator diverges on some cells; scored as generated")
    return None


class ValueScaleError(InputDataError):
    """A file's values on another scale than the evaluation scores (raw counts where log-normalised values are scored, or
    the reverse); ``side`` names the file (``real``, ``pred``, ``training``), ``want`` the scale (``lognorm``, ``counts``)."""

    def __init__(self, message: str, side: str, want: str) -> None:
        super().__init__(message)
        self.side, self.want = side, want

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.side, self.want))


class PairScaleError(ScaleMismatchError, ValueScaleError):
    """A prediction and a truth on different scales (``check_same_scale``), naming the file on the wrong one (``side``): a
    ``ValueScaleError`` too, so the refusal names the layer or ``raw`` of that file that holds log-normalised values
    (``distgen.evaluation.stored_scales.scale_hints``; counts in ``X`` and ``layers['logcounts']`` beside them, as
    Bioconductor and many other tools write them, is refused naming that layer, not with a recipe to recompute what the
    file already holds)."""


def check_scale(x: torch.Tensor | np.ndarray | ValueSample, name: str, strict: bool = False) -> None:
    """Refuse raw counts in up to 2,000 rows spread over ``x``: distgen evaluates log-normalised expression.

    ``strict`` (files read for evaluation, ``normalization.check_files``): whole numbers with some value above 1, however
    small (``value_scale``'s rule), so that raw counts of a shallow file or of a panel of lowly expressed genes (every
    count <= 30) are not scored as log-normalised values. Otherwise (cells a
    loader already read at a declared scale, ``PerturbationSchema.scale='log'``) integers above 30 only.
    """
    floor = 1.0 if strict else 30.0
    sample = _sampled(x)  # a ValueSample: as drawn
    if sample.size == 0 or sample.max() <= floor:  # the common case in one pass (a NaN maximum takes the exact rule)
        return
    atol = count_atol(sample.dtype)
    flat = sample.ravel()
    head = flat[:5000]
    head = head[np.isfinite(head)]
    if bool(off_integer(head, atol).any()):  # a fraction early on: log values
        return
    finite = flat[np.isfinite(flat)]
    if finite.size and np.rint(finite.max()) > floor and not off_integer(finite, atol).any():
        raise ValueScaleError(f"the {name} cells look like raw counts (integers up to {finite.max():.0f}); distgen evaluates "
                              "log-normalised expression: run scanpy.pp.normalize_total and scanpy.pp.log1p first", name, "lognorm")


def check_counts(x: torch.Tensor | np.ndarray | ValueSample, name: str) -> None:
    """Refuse fractional or negative values (in up to 2,000 rows spread over ``x``) where raw counts are scored (cell-eval2's v2 and vcc2026 profiles).

    Fractional: further than ``COUNT_ATOL`` from the nearest integer, in ``x``'s dtype, as cell-eval2 0.20.0 decides;
    values within it (dust a float64 transform left) are scored as stored, unrounded, as cell-eval2 scores them."""
    sample = _sampled(x)
    if sample.size == 0:
        return
    atol = count_atol(sample.dtype)
    if sample.min() >= 0:  # no NaN (it makes the minimum NaN) and nothing negative: only a fraction can fail (+inf passes)
        bad = bool(off_integer(sample, atol).any())
    else:  # the exact rule on the finite values
        finite = sample[np.isfinite(sample)]
        bad = bool(finite.size and (finite.min() < 0 or bool(off_integer(finite, atol).any())))
    if bad:
        raise ValueScaleError(f"the {name} cells hold fractional or negative values, but this evaluation scores RAW COUNTS "
                              "(the vcc2026 / cell-eval2 counts profiles): pass raw-count predictions and the raw-count truth, "
                              "or evaluate log-normalised files with a log-scale profile", name, "counts")


#: The most counts one cell (predicted or real) may hold where raw counts are scored: cell-eval2 0.20.0's v2 presets
#: (``celleval2``, ``vcc2026``) refuse a pair with a cell past it (``max_counts_per_cell``); no cell holds a million molecules.
MAX_COUNTS_PER_CELL = 1_000_000.0


#: Rows of a block ``check_cell_totals`` sums in float64 (1,024 x 20,000 genes: 164 MB).
_TOTALS_ROWS = 1024


def check_cell_totals(cells: Cells, x: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse a cell of ``x`` (``cells``' values, raw counts) whose finite total exceeds ``MAX_COUNTS_PER_CELL``, naming the
    first one's condition and total, as cell-eval2 refuses such a pair. Returns the ``[N]`` float64 totals (each row's
    sum, ``torch.sum`` of the row in float64), which ``eval_data`` hands on as the cells' library sizes
    (``Population.totals``)."""
    totals = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], _TOTALS_ROWS):  # a block at a time: no float64 copy of the whole matrix at once
        totals[start:start + _TOTALS_ROWS] = x[start:start + _TOTALS_ROWS].to(torch.float64).sum(-1)
    # NaN or inf: left to the check that names such perturbations (``reference_rules``)
    over = torch.nonzero(torch.isfinite(totals) & (totals > MAX_COUNTS_PER_CELL)).flatten()
    if not over.numel():
        return totals
    i = int(over[0])
    raise InputDataError(f"the {name} file holds {counted(int(over.numel()), 'cell')} of more than {MAX_COUNTS_PER_CELL:,.0f} counts (first: "
                         f"a cell of {str(cells.conditions[i])!r}, {float(totals[i]):,.12g} counts), which cell-eval2's counts presets "
                         "refuse (max_counts_per_cell): no cell holds that many molecules, so these are not raw counts of cells; "
                         + ("pass the measured raw counts of the real cells (their counts layer, not scaled)" if name == "real" else
                            "write the predictions at the depth of the real cells (distgen predict --counts draws each cell's "
                            "library size from the matched controls)"))


#: Words of the note an evaluation keeps when its prediction is its truth (``distgen.pipeline.evaluate.one_truth_note``):
#: ``distgen compare`` finds them in a summary's notes.
PERFECT_WORDS = "every score is that of a perfect prediction"


def same_source(pred: Any, truth: Any) -> bool:
    """Whether ``pred`` and ``truth`` are one object or one file (every score is then a perfect prediction's)."""
    if pred is truth:
        return True
    if isinstance(pred, str | os.PathLike) and isinstance(truth, str | os.PathLike):
        try:
            return Path(pred).resolve() == Path(truth).resolve()
        except OSError:
            return False
    return False


def label_codes(labels: np.ndarray | list[str], codes: dict[str, int]) -> np.ndarray:
    """``[N]`` int64 ``codes[label]`` of each label (a label ``codes`` lacks raises ``KeyError``), looked up in one pass.

    A cell's condition code: ``codes`` maps the control label (``Cells.is_control`` is ``conditions == control``) to the
    control's code and each perturbation to its index."""
    values = labels.tolist() if isinstance(labels, np.ndarray) else labels
    return np.fromiter(map(codes.__getitem__, values), dtype=np.int64, count=len(values))


def grouped(cells: Cells) -> Cells:
    """``cells`` with their rows as ``eval_data`` groups them: context by context (sorted), the perturbed cells by condition
    (sorted), then that context's controls; the order of the cells within a group kept (``cells`` itself when already so).

    ``Population.from_codes`` takes such rows as slices: a file read for evaluation (``pipeline.evaluate``) and grouped
    once is the only copy of its table, where grouping it in ``eval_data`` held a second one beside the cells as read.
    Every group's cells are those of ``cells`` in the same order, so every score is the same, bit for bit.
    """
    contexts = cells.contexts.tolist()
    perts = sorted(set(cells.conditions[~cells.is_control].tolist()))
    cond_code = label_codes(cells.conditions, {**{p: i for i, p in enumerate(perts)}, cells.control: len(perts)})
    ctx_code = label_codes(contexts, {c: i for i, c in enumerate(sorted(set(contexts)))})
    order = np.lexsort((cond_code, ctx_code))  # stable: each group's cells in their order
    if bool((order == np.arange(len(order))).all()):
        return cells
    x = cells.X
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:  # numpy's gather: ~10x torch's
        x = torch.from_numpy(x.numpy().take(order, axis=0))
    else:
        x = x[torch.from_numpy(order).to(x.device)]
    return Cells(x, cells.conditions[order], cells.genes, cells.contexts[order], cells.batches[order], cells.control,
                 None if cells.names is None else cells.names[order])


def rows_of_context(cells: Cells, context: str) -> Cells:
    """``cells.of_context(context)``; a slice of ``cells.X`` (no copy) when that context's rows are one block (``grouped``)."""
    rows = np.flatnonzero(cells.contexts == context)
    if len(rows) == 0 or int(rows[-1]) - int(rows[0]) + 1 != len(rows):
        return cells.of_context(context)
    return cells.block(int(rows[0]), int(rows[-1]) + 1)


def check_controls(cells: Cells, side: str, where: str = "") -> None:
    """Refuse fewer than ``MIN_CELLS`` control cells in the ``side`` file (``where``: e.g. `` of context 'B'``).

    One control cell is refused as a one-cell perturbation is left unscored: the control mean every
    delta is taken from (``mse_delta``, ``pearson_delta``, the DE tests) would be that cell's noise.
    """
    n = int(np.asarray(cells.is_control).sum())
    if 0 < n < MIN_CELLS:
        raise InputDataError(f"the {side} file has only {n} control cell(s){where}; at least {MIN_CELLS} are needed: every "
                         "perturbation's delta is taken from the control mean, which one cell cannot give (its noise would be "
                         "scored as the effect); add control cells to the file")


def _sample(genes: list[str]) -> str:
    """`` ('a', 'b', and 3 more)`` after a count of genes, the first five named; nothing for none."""
    return f" ({first_of(genes, 5, render=repr, enclosed=True)})" if genes else ""


def align(pred: Cells, truth: Cells, name: str = "prediction") -> tuple[Cells, list[str]]:
    """``pred`` with its genes in ``truth``'s order (a note says when they were reordered); other genes are an error."""
    if pred.genes == truth.genes:
        return pred, []
    missing, extra = sorted(set(truth.genes) - set(pred.genes)), sorted(set(pred.genes) - set(truth.genes))
    if missing or extra or len(pred.genes) != len(truth.genes):
        raise InputDataError(f"{name} and truth have different genes: {counted(len(missing), 'real gene')} missing from the {name}{_sample(missing)}, "
                         f"{counted(len(extra), name + ' gene')} not in the truth{_sample(extra)}; "
                         + (spelling_note(missing, extra, name) or "subset both to the same genes"))
    return pred.with_genes(truth.genes), [f"{name} genes were in a different order; reordered to the truth's order"]


#: Ways two tools spell one gene differently: (what differs, how to make a name comparable).
_SPELLINGS: tuple[tuple[str, Any], ...] = (
    ("Unicode form (the same text in other code points: 'é' as one character or as 'e' plus an accent, 'µ' and 'μ')",
     lambda g: unicodedata.normalize("NFKC", g)),
    ("surrounding whitespace", str.strip),
    ("letter case", str.upper),
    ("an Ensembl version suffix", lambda g: re.sub(r"^(ENS[A-Z]*\d+)\.\d+$", r"\1", g.strip())),
)


def spelling_note(missing: Sequence[str], extra: Sequence[str], name: str = "prediction") -> str | None:
    """The fix for genes that differ only in spelling (Unicode form, whitespace, case, Ensembl version), or None.

    Said when some of the ``name``'s genes not in the truth (``extra``) name a gene the truth has that is
    missing from it (``missing``) once both are spelled one way: the files hold the same genes under other names,
    which subsetting would silently throw away. distgen never renames genes itself (``TP53`` and ``Tp53`` are
    different genes in a mixed-species panel).
    """
    if not missing or not extra:
        return None
    for what, norm in _SPELLINGS:
        wanted = {norm(g): g for g in missing}
        pairs = [(g, wanted[norm(g)]) for g in extra if norm(g) in wanted]
        if pairs:
            return (f"{len(pairs)} of the {name}'s {len(extra)} other genes differ from a real gene only by {what} (e.g. "
                    f"{_shown(*pairs[0])}): rename the {name}'s var_names to the truth's spelling (one name per "
                    "gene, as the truth writes it), then evaluate again")
    return None


def _shown(a: str, b: str, word: str = "vs") -> str:
    """``'a' vs 'b'``; as ``ascii()`` writes them when they differ only in their Unicode form (their reprs look alike)."""
    same_text = a != b and unicodedata.normalize("NFKC", a) == unicodedata.normalize("NFKC", b)
    show = ascii if same_text else repr
    return f"{show(a)} {word} {show(b)}"


def _label_key(label: str) -> str:
    """A perturbation label spelled one way: one Unicode form (NFKC), upper case, atoms split on the usual combination
    delimiters, sorted."""
    text = unicodedata.normalize("NFKC", label).strip().upper()
    return "+".join(sorted(a for a in re.split(r"[+_|;,/\s]+", text) if a))


def spelled_pairs(extra: Iterable[str], known: Sequence[str], key: Callable[[str], str]) -> list[tuple[str, str]]:
    """``(e, k)`` for each ``e`` of ``extra`` that is not in ``known`` but spelled one way (``key``) is ``k`` of ``known``
    (the first such ``k``): labels or contexts written another way."""
    first: dict[str, str] = {}
    for k in known:
        first.setdefault(key(k), k)
    have = set(known)
    return [(e, first[key(e)]) for e in extra if e not in have and key(e) in first]


def label_note(extra: Sequence[str], perts: Sequence[str], name: str = "pred") -> str | None:
    """The fix for ``name`` perturbation labels that are truth labels spelled another way (case, a combination delimiter
    such as ``KLF1_MAP2K6`` for ``KLF1+MAP2K6``, the Unicode form: ``é`` composed or decomposed, ``µ`` and ``μ``), or None.
    distgen never matches such labels itself (``_`` is part of many single labels, and case can tell genes of two species
    apart); labels that look alike but differ in their code points would otherwise be reported as missing from the truth.
    Labels that differ only in a float32 dose's text (``x@0.30000001192092896``, an earlier distgen's, for ``x@0.3``) are
    read as one (``layout.read_pair``) unless a file read with them holds both spellings: that is said."""
    from distgen.types.doses import current_label

    doses = spelled_pairs(extra, perts, current_label)
    if doses:
        return (f"{len(doses)} of them name a truth perturbation with its dose written another way (e.g. "
                f"{_shown(*doses[0], 'for')}: an earlier distgen wrote a float32 dose's full text), and they were not read "
                "as one because a file read with them holds both spellings (two populations named so): relabel that file's "
                f"populations so that no two labels differ only in a dose's text, or write the {name}'s labels as the truth "
                "writes them")
    pairs = spelled_pairs(extra, perts, _label_key)
    if not pairs:
        return None
    return (f"{len(pairs)} of them name a truth perturbation spelled another way (e.g. {_shown(*pairs[0], 'for')}: "
            f"letter case, the combination delimiter or the Unicode form): write the {name}'s labels as the truth writes them (combinations "
            "joined by '+')")


def scale_error_in(e: ValueScaleError, prefix: str) -> ValueScaleError:
    """``e`` with ``prefix`` before its message (where it was raised: a context), its class and ``side`` kept, which
    ``stored_scales.scale_hints`` reads to name the layer holding the right values (a per-context refusal keeps both)."""
    return type(e)(prefix + str(e), e.side, e.want)


@contextmanager
def in_context(context: str | None) -> Iterator[None]:
    """A refusal of a file's value scale (``ValueScaleError``) raised inside names ``context`` (``scale_error_in``)."""
    try:
        yield
    except ValueScaleError as e:
        if context is None:
            raise
        raise scale_error_in(e, f"context {context!r}: ") from e


def eval_data(pred: Cells, truth: Cells, name: str = "pred", scale: str = "lognorm", check_pred_scale: bool = True,
              real: Population | None = None, keep_float64: bool = False, context: str | None = None,
              pred_controls: bool = True) -> EvalData:
    """``EvalData`` of one population pair, grouped by condition (contexts pooled: split by context first).

    Perturbations are the truth's conditions, sorted; each side's control cells are its own.
    ``pred`` must already have the truth's genes (``align``). ``scale``: ``"lognorm"`` (log-normalised
    values; raw counts are refused) or ``"counts"`` (raw counts on both sides, as cell-eval2's v2 and
    vcc2026 profiles score; fractional values refused; recorded in ``data.cache["scale"]``).
    ``check_pred_scale=False`` skips comparing the two scales, for predictions a model generated in
    log space (their range is the model's, not a sign of a file on another scale). ``real``: the truth's cells already
    grouped (``Population``) by an earlier ``eval_data`` of the same ``truth``, used as they are (no second copy of the
    truth: ``calibration.reference_data``, one per baseline). ``keep_float64``: cells whose ``X`` is float64 are grouped in
    float64 (a reference profile scoring a float64 file as its reference does: ``Profile.file_dtype``), else float32.
    ``context``: the cells are that context's (scored per context), named where a check refuses them.
    ``pred_controls=False``: no metric reads the prediction's control cells (a profile scoring against the real controls,
    ``profiles.reads_pred_controls``), so one predicted control cell is not refused (``check_controls``).
    """
    if scale not in ("lognorm", "counts"):
        raise ValueError(f"scale must be 'lognorm' or 'counts', got {scale!r}")
    if pred.genes != truth.genes:
        raise ValueError("eval_data: pred and truth genes differ; align them first (distgen.evaluation.io.align)")
    # read once: a reference's rows may be gathered when read (types.IndexedCells); detached: a prediction that requires
    # grad (a model's output in the Python API) is scored as its values (check_counts and the digests raised on it)
    pred_x, truth_x = pred.X.detach(), truth.X.detach()
    # log scale: one sample of each side's values, drawn once for the scale comparison and the raw-count check (the same
    # rows, so the same decisions)
    pred_s, truth_s = (ValueSample(pred_x), ValueSample(truth_x)) if scale == "lognorm" else (pred_x, truth_x)
    totals: dict[str, torch.Tensor] = {}
    with in_context(context):
        if scale == "lognorm" and check_pred_scale:  # first: two scales are named together, with what to apply to which file
            check_same_scale(pred_s, truth_s, name)
        if check_pred_scale:  # a model's own output (generated) is left to its own checks, as the CLI leaves a generated file
            check_holds_prediction(pred_x, name, scale, context)
        check = check_counts if scale == "counts" else check_scale
        check(truth_s, "real")
        check(pred_s, name)
        if scale == "counts":  # each cell's total, summed once: the limit's, then the library sizes (Population.totals)
            totals = {"real": check_cell_totals(truth, truth_x, "real"), name: check_cell_totals(pred, pred_x, name)}
    check_controls(truth, "real")
    if pred_controls:
        check_controls(pred, name)
    perts = sorted(set(truth.conditions[~truth.is_control].tolist()))
    extra = sorted(set(pred.conditions[~pred.is_control].tolist()) - set(perts))
    if extra:
        words = [e for e in extra if e in CONTROL_LABELS]  # GEARS' 'ctrl' beside cell-eval's 'non-targeting' in one file
        control_note = (f"{words[0]!r} is a usual control label but this evaluation's control is {truth.control!r}: if those are "
                        f"control cells, relabel them {truth.control!r} in the {name} file; ") if words else ""
        raise InputDataError(f"the {name} has {counted(len(extra), 'perturbation')} that the truth lacks ({first_of(extra, 5, render=repr, enclosed=True)}); "
                         + control_note + (label_note(extra, perts, name) or "evaluate against a truth that contains them, or drop them "
                                                              "from the prediction"))
    index = {p: i for i, p in enumerate(perts)}
    pops = {} if real is None else {"real": real}
    if real is not None and (real.n_perts != len(perts) or real.X.shape[0] + real.control.shape[0] != len(truth)):
        raise ValueError(f"eval_data: real= holds {real.n_perts} groups of {real.X.shape[0] + real.control.shape[0]} cells, "
                         f"the truth {len(perts)} of {len(truth)}: pass the Population of this truth")
    for side, cells, x in (("real", truth, truth_x), (name, pred, pred_x)):
        if side in pops:
            continue
        codes = label_codes(cells.conditions, {**index, cells.control: -1})
        summed = x.dtype  # the totals are those of these values only where grouping does not retype them
        x = x if keep_float64 and x.dtype == torch.float64 else x.to(torch.float32)
        pop = Population.from_codes(x, torch.from_numpy(codes), len(perts),
                                    totals=totals.get(side) if summed == x.dtype else None)
        if not finite_rows(pop.control).all():  # the other rows: flag_invalid
            raise InputDataError(f"the {side} control cells contain NaN or inf values ({PAST_FLOAT32}); fix the input")
        pops[side] = pop
    data = EvalData(real=pops["real"], pred=pops[name], perts=tuple(perts), targets=tuple(truth.atoms(p) for p in perts),
                    genes=tuple(truth.genes))
    if scale == "counts":
        data.cache["scale"] = "counts"
    flag_invalid(data)
    return data


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: rows of ``x [N, G]`` whose values are all finite (row sums first; exact check of the rest)."""
    ok = torch.isfinite(x.sum(-1))  # NaN or inf in a row makes its sum non-finite; an overflowing sum is re-checked
    if not bool(ok.all()):
        bad = (~ok).nonzero().flatten()
        ok[bad] = torch.isfinite(x[bad]).all(-1)
    return ok


#: What the NaN/inf warnings and refusals add: how a finite number of a file becomes inf in distgen's float32 tables.
PAST_FLOAT32 = f"a value past float32's range (±{float(np.finfo(np.float32).max):.3g}, e.g. 1e300 in a float64 file) is read as inf"


@contextmanager
def float32_reads() -> Iterator[None]:
    """Read files to evaluate into float32 tables without numpy's "overflow encountered in cast": a float64 value past
    float32's range becomes inf, which the evaluation flags by name (its perturbation NaN, with distgen's warning, which
    says ``PAST_FLOAT32``; a profile refuses it). numpy's own RuntimeWarning named a line of distgen, not the file or the
    cells, and printed beside distgen's."""
    with np.errstate(over="ignore"):
        yield


def flag_invalid(data: EvalData, min_cells: int = MIN_CELLS) -> None:
    """Record perturbations whose metrics must be NaN, with the reason, in ``data.invalid``."""
    for name in ("real", "pred"):
        pop = data.population(name)
        counts = pop.counts.tolist()
        bad_rows = ~finite_rows(pop.X)
        bad = torch.zeros(pop.n_perts, dtype=torch.long).index_add_(0, pop.codes(), bad_rows.long()).tolist()
        for p in range(pop.n_perts):
            if counts[p] == 0:
                data.invalid.setdefault(p, f"no {name} cells for this perturbation")
            elif counts[p] < min_cells:
                data.invalid.setdefault(p, f"only {counts[p]} {name} cell(s); at least {min_cells} are needed")
            elif bad[p]:
                data.invalid.setdefault(p, f"{bad[p]} {name} cell(s) contain NaN or inf values")
