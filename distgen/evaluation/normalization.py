"""What was done to an evaluated file's values: scaled or centred (negative values), and how it was normalised.

``distgen.evaluation.io`` tells raw counts, normalised and log-normalised values apart by their range;
files that pass it can still disagree in ways the range does not show, and each makes every score
silently wrong:

* **Negative values.** Log-normalised expression and raw counts are never negative: a negative value
  means the file was scaled or centred (``scanpy.pp.scale``, z-scores, ``regress_out``, a PCA
  reconstruction), and ``log1p`` of it is NaN. ``check_nonnegative`` refuses it with that diagnosis.
* **Different normalisation.** ``normalize_total`` makes every cell sum to one total; when a file kept
  every gene afterwards, ``expm1(X)`` sums to that total in every cell (``2**X - 1`` for ``log2``),
  and ``log1p`` without ``normalize_total`` leaves ``expm1(X)`` integer. ``signature`` reads that off
  up to 2,000 cells spread over the file; ``check_same_normalization`` refuses a pair whose signatures are both known and
  differ (CPM against 1e4, log2 against ln, normalised against not), naming both and the fix. Files
  that kept only some genes (the common case) have no signature and are not compared.
* **A model's predictions** (``uns["distgen"]["kind"] == "pred"``) may hold values below 0 or off the
  count/log grid (a model's noise), so the checks above spare them; ``check_generated_scale`` still
  requires them on the truth's scale, comparing their control cells (measured, not generated) with the
  real ones by signatures that survive noise (mean and 99% quantile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distgen.evaluation.io import (
    SCALE_SAMPLE_ROWS,
    ScaleMismatchError,
    ValueSample,
    check_holds_prediction,
    check_same_scale,
    check_scale,
    sample_rows,
)
from distgen.logscale import extra_log1p

#: Share of a prediction's values below 0 up to which a refusal also says how to score them as a model's output
#: (scaled or centred data has about half its values below 0).
NEGATIVE_SHARE = 0.05
#: Rows of a file the normalisation signature is read from: the scale checks' sample (``io.ValueSample``), shared with them.
SAMPLE_ROWS = SCALE_SAMPLE_ROWS
#: Relative spread (max - min) / median of the cell totals below which a file's totals are one constant.
CONSTANT_TOTAL_RTOL = 1e-3
#: Relative difference of two files' totals above which they were normalised to different totals.
DIFFERENT_TOTAL_RTOL = 1e-2
#: Share of non-zero ``expm1(X)`` values that must be integers for ``log1p`` of raw counts.
INTEGER_SHARE = 0.999
#: Factor (either way) by which a generated prediction's mean or 99th percentile may differ from the truth's before it is
#: refused as on another scale (``check_generated_scale``): ``log2(1 + x)`` of the same values is 1.44 times ``log1p``,
#: z-scores have a mean near 0, raw counts a 99th percentile several times the log one; a model's noise moves them by
#: a few percent.
GENERATED_SCALE_FACTOR = 1.3
#: Quantile of the values compared by ``check_generated_scale``, next to their mean.
GENERATED_QUANTILE = 0.99
#: Rows of a file ``check_logged_once`` reads.
LOGGED_ONCE_ROWS = 200


def _fmt(total: float) -> str:
    """``1e4`` for totals within rounding of a power of ten (the usual targets), else 4 significant digits."""
    if total > 0:
        e = round(math.log10(total))
        if e >= 3 and abs(total / 10**e - 1) < 1e-3:
            return f"1e{e}"
    return f"{total:.4g}"


def check_nonnegative(x: torch.Tensor | np.ndarray, name: str, scale: str = "lognorm") -> None:
    """Refuse negative values in the ``name`` cells (every value is checked): the file was scaled or centred.

    ``scale`` (``lognorm`` or ``counts``) names what the evaluation expected.
    """
    t = torch.as_tensor(x)
    if t.numel() == 0:
        return
    low = float(t.min())
    if math.isnan(low):  # NaN rows are flagged per perturbation elsewhere; the finite values decide
        finite = t[torch.isfinite(t)]
        low = float(finite.min()) if finite.numel() else 0.0
    if low >= 0:
        return
    n_neg = int((t < 0).sum())
    expected = "raw counts" if scale == "counts" else "log-normalised expression (log1p of normalize_total)"
    # a few negatives in a prediction: more likely a model's output (a regression head, a decoder) than scaled data, where
    # about half the values are below 0; say how to score them as what they are
    model = (f" If they are a model's predictions ({n_neg / t.numel():.2%} of the values are below 0, as a model's output can "
             "be), mark the file as predictions (adata.uns['distgen'] = {'kind': 'pred'}): they are then scored as generated, "
             "with a note, once its control cells show it on the real cells' scale") if name == "pred" and n_neg <= NEGATIVE_SHARE * t.numel() else ""
    raise ScaleMismatchError(
        f"the {name} cells hold {n_neg} negative value(s) (min {low:.4g}) of {t.numel()}; {expected} {'are' if scale == 'counts' else 'is'} never negative: "
        "the values look scaled or centred (scanpy.pp.scale, z-scores, regress_out or a reconstruction), and log1p of them "
        "is NaN. Evaluate the unscaled values (the layer or adata.raw saved before scanpy.pp.scale)." + model
    )


def check_logged_once(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Refuse log-normalised ``name`` cells that were log-transformed more than once (``distgen.logscale.extra_log1p`` on
    up to ``LOGGED_ONCE_ROWS`` cells spread over the file): ``log1p`` of log1p values is fractional, non-negative and
    small, so every range check passes it, and a truth and a prediction logged twice alike pass the comparisons too;
    every score, and the DE tests' fold changes (``expm1`` of the values), would be read on a squeezed scale.
    """
    sample = np.asarray(sample_rows(torch.as_tensor(x).detach().cpu().numpy(), LOGGED_ONCE_ROWS), dtype=np.float64)
    extra = extra_log1p(sample[np.isfinite(sample).all(1)] if sample.ndim == 2 else sample)
    if extra:
        undo = "np.expm1(" * extra + "adata.X" + ")" * extra
        raise ScaleMismatchError(
            f"the {name} cells were log-transformed {extra + 1} times: {undo.replace('adata.X', 'X')} gives log1p-normalised "
            "values (each cell's expm1 of those are its counts over one size factor), so these are log1p of log-normalised "
            f"values, squeezed towards 0 (a log1p value of 7 reads as {np.log1p(7.0) if extra == 1 else np.log1p(np.log1p(7.0)):.2g}). "
            f"Undo the extra log in the {name} file (adata.X = {undo}; adata.write_h5ad(...)) and evaluate again")


def signature(x: torch.Tensor | np.ndarray | ValueSample) -> tuple[str, float] | None:
    """How up to ``SAMPLE_ROWS`` cells of ``x`` were normalised, or None when it cannot be told (a ``ValueSample`` of the
    file, ``io.ValueSample``, is read as drawn).

    ``("ln", total)``: ``expm1(x)`` sums to one ``total`` in every cell (``log1p`` of ``normalize_total``);
    ``("log2", total)``: ``2**x - 1`` does; ``("counts", 0)``: ``expm1(x)`` is integer (``log1p`` without
    ``normalize_total``). Needs 5 cells with expression and a value above ``log1p(1)``.
    """
    s = x if isinstance(x, ValueSample) else ValueSample(np.asarray(torch.as_tensor(x).detach().cpu().numpy()))
    sample = s.f64
    if sample.ndim != 2 or sample.size == 0 or not s.all_finite or sample.min() < 0 or sample.max() > 50:
        return None
    if s.whole:  # integers are counts (distgen.evaluation.io.value_scale), not logged values
        return None
    # expm1 of every value, zeros included: numpy's vectorised expm1 over the whole sample is ~5x faster here than the
    # masked loop of ``where=sample != 0`` on Kang's 70% zeros (1.9 against 8.7 ms), which would give the same totals.
    # One whole-sample array at a time (the counts test's values are taken from expm1's before 2**x - 1 is made): both
    # kept alive held 5 float64 samples at once on a log1p-of-counts file.
    undone = np.expm1(sample)
    if (sig := _constant_total("ln", undone)) is not None:
        return sig
    keep = (sample > 0) & (sample < math.log1p(1e4))  # below 1e4, float32 rounding keeps expm1 within 0.05 of an integer
    logged, values = sample[keep], undone[keep]
    del keep
    undone = np.exp2(sample, out=undone)  # 2**x - 1 in expm1's buffer: the same values as np.exp2(sample) - 1.0
    undone -= 1.0
    if (sig := _constant_total("log2", undone)) is not None:
        return sig
    del undone
    if values.size and values.max() >= 2:
        tol = 1e-3 + 5e-7 * (values + 1) * np.maximum(logged, 1)  # ~4 float32 ulps of the logged value, through expm1
        if float((np.abs(values - np.round(values)) <= tol).mean()) >= INTEGER_SHARE:
            return "counts", 0.0
    return None


def _constant_total(base: str, undone: np.ndarray) -> tuple[str, float] | None:
    """``(base, median total)`` when the rows of ``undone`` (the sample with the log undone) that hold expression, at least
    5, sum to one total (``CONSTANT_TOTAL_RTOL``); else None."""
    totals = undone.sum(1)
    totals = totals[totals > 0]
    if totals.size >= 5:
        mid = float(np.median(totals))
        if (float(totals.max()) - float(totals.min())) / mid < CONSTANT_TOTAL_RTOL:
            return base, mid
    return None


def _describe(sig: tuple[str, float]) -> str:
    base, total = sig
    if base == "counts":
        return "log1p of raw counts, not normalised (expm1 of the values is integer)"
    return f"normalised to {_fmt(total)} per cell then {'log2(1 + x)' if base == 'log2' else 'log1p'}"


def check_same_normalization(pred: torch.Tensor | np.ndarray | ValueSample, real: torch.Tensor | np.ndarray | ValueSample,
                             name: str = "pred") -> None:
    """Refuse a pair whose normalisation signatures are both known and differ (``ScaleMismatchError`` naming both, with the fix);
    either side may be the file's ``io.ValueSample``."""
    sp, sr = signature(pred), signature(real)
    if sp is None or sr is None:
        return
    if sp[0] == sr[0] and (sp[0] == "counts" or abs(sp[1] - sr[1]) <= DIFFERENT_TOTAL_RTOL * max(sp[1], sr[1])):
        return
    if sr[0] == "counts":
        fix = "preprocess both files the same way: scanpy.pp.normalize_total then scanpy.pp.log1p on the raw counts of each"
    else:
        log = "log2(1 + x)" if sr[0] == "log2" else "scanpy.pp.log1p"
        fix = f"preprocess the {name} cells as the real ones were: scanpy.pp.normalize_total(target_sum={_fmt(sr[1])}) then {log}, from raw counts"
    raise ScaleMismatchError(
        f"the {name} cells are {_describe(sp)} but the real cells are {_describe(sr)}: every score compares values on "
        f"different scales; {fix}"
    )


def generated_files(kinds: dict[str, str]) -> tuple[str, ...]:
    """The read files distgen's layout wrote as a model's predictions (``uns["distgen"]["kind"] == "pred"`` on the pred file)."""
    return tuple(name for name, kind in kinds.items() if name == "pred" and kind == "pred")


def check_log_bases(bases: dict[str, float], name: str = "pred") -> None:
    """Refuse log-normalised ``name`` and ``real`` files whose scanpy records (``uns["log1p"]["base"]``) give different bases.

    ``scanpy.pp.log1p(base=2)`` against the natural log differs by a factor ``ln 2`` on every value: on a gene subset the
    value checks (``signature``) cannot see it, the record can. Files without the record are not compared.
    """
    if name not in bases or "real" not in bases or math.isclose(bases[name], bases["real"], rel_tol=1e-9):
        return

    def said(b: float) -> str:
        return "the natural log (base=None)" if math.isclose(b, math.e) else f"base={b:g}"

    raise ScaleMismatchError(
        f"the {name} file records scanpy's log1p with {said(bases[name])} (uns['log1p']['base']) but the real file with "
        f"{said(bases['real'])}: every value differs by a constant factor, and every score with it; preprocess the {name} "
        f"cells as the real ones were (scanpy.pp.log1p with {said(bases['real'])}, from the normalised counts), or correct "
        "the record if it is wrong"
    )


def _scale_stats(cells: Any, genes: list[str]) -> tuple[float, float] | None:
    """(mean, ``GENERATED_QUANTILE`` quantile) of the finite values of ``genes`` in up to ``SAMPLE_ROWS`` control cells of
    ``cells`` spread over the file, or None without control cells."""
    index = {g: i for i, g in enumerate(cells.genes)}
    rows = np.flatnonzero(np.asarray(cells.is_control))
    if not rows.size:
        return None
    x = torch.as_tensor(cells.X)[torch.from_numpy(sample_rows(rows, SAMPLE_ROWS))]
    if list(cells.genes) != genes:  # the file's own columns in its own order (the common case) need no gather
        x = x[:, [index[g] for g in genes]]
    values = np.asarray(x.detach().cpu().numpy(), dtype=np.float64).ravel()
    finite = np.isfinite(values)
    if not finite.all():  # the common case (every value finite) keeps values as it is, no masked copy
        values = values[finite]
    if values.size > 2_000_000:  # a strided subset keeps the quantile cheap on wide files
        values = values[:: values.size // 2_000_000 + 1]
    if not values.size:
        return None
    # overwrite_input: values is this function's own copy (the quantile partitions it in place, not a copy of it)
    return float(values.mean()), float(np.quantile(values, GENERATED_QUANTILE, overwrite_input=True))


def _control_stats(pred: Any, real: Any) -> tuple[tuple[float, float], tuple[float, float], list[str]] | None:
    """``_scale_stats`` of ``pred``'s and ``real``'s control cells over the genes both hold, and those genes; None with
    fewer than 5 shared genes (the gene checks say so: ``io.align``) or without control cells on a side (refused by the
    evaluation, with its own message)."""
    shared = set(pred.genes)
    genes = [g for g in real.genes if g in shared]
    if len(genes) < 5:
        return None
    sp, sr = _scale_stats(pred, genes), _scale_stats(real, genes)
    if sp is None or sr is None:
        return None
    return sp, sr, genes


def check_control_scale(pred: Any, real: Any, name: str = "pred", scale: str = "lognorm") -> None:
    """Refuse a prediction file (not marked as generated) whose control cells are off the real control cells' scale, or
    whose ``X`` holds only zeros (``ScaleMismatchError``). The scale is compared for log-normalised files only (``scale``):
    raw counts of another depth are scored by cell-eval2's counts profiles as the same expression.

    Other tools write their predictions with the truth's control cells beside them (cell-eval's layout), and a file on
    another log base passes every range check: ``log2(1 + x)`` or ``log10(1 + x)`` of log-normalised counts is fractional,
    non-negative and below ``LOG_MAX``, and on a gene subset (the common case) ``signature`` cannot tell it; scored without
    a word (a log2 copy of a prediction on 500 Norman K562 genes: mse 0.0138 against 0.00034 in the natural log). Refused only when the mean AND the
    ``GENERATED_QUANTILE`` quantile of the control values (the genes both files hold) are both further than
    ``GENERATED_SCALE_FACTOR`` from the truth's, the same way: another batch or a model's reconstruction of the controls
    moves one of them a little, a log base moves both by one factor. An all-zero ``X`` (the predictions left in a layer
    or ``obsm``) is refused whatever its controls, as is one of values all within ``io.COUNT_ATOL`` of 0 (zeros by the count
    rule: such dust is no prediction either).
    """
    if pred is None or real is None:
        return
    check_holds_prediction(pred.X, name, scale)
    if scale != "lognorm":  # raw counts: cell-eval2's counts profiles normalise each pseudobulk, so another depth is no error
        return
    stats = _control_stats(pred, real)
    if stats is None:
        return
    sp, sr, genes = stats
    if sr[0] <= 0 or sr[1] <= 0:
        return
    ratios = (sp[0] / sr[0], sp[1] / sr[1])
    high = all(r > GENERATED_SCALE_FACTOR for r in ratios)
    low = all(r < 1 / GENERATED_SCALE_FACTOR for r in ratios)
    if not (high or low):
        return
    raise ScaleMismatchError(
        f"the {name} file's control cells are not on the real control cells' scale (or are other cells than the truth's "
        f"controls): mean {sp[0]:.4g} against {sr[0]:.4g} "
        f"({ratios[0]:.3g} times) and {GENERATED_QUANTILE:.0%} quantile {sp[1]:.4g} against {sr[1]:.4g} ({ratios[1]:.3g} times) "
        f"over the {len(genes)} shared genes; every score would compare values on two scales (log2(1 + x) of the same data "
        "is 1.44 times log1p, log10(1 + x) 0.43 times, another normalisation total or another cell line shifts both). Write the "
        f"{name} file as log-normalised values (scanpy.pp.normalize_total then scanpy.pp.log1p) on the truth's scale, with the "
        "truth's control cells as its controls (cell-eval's layout), and evaluate again")


def check_generated_scale(pred: Any, real: Any, name: str = "pred") -> None:
    """Refuse a prediction a model generated (``uns["distgen"]["kind"] == "pred"``) that is not on the truth's scale.

    Marking a file as generated lets it hold values below 0, off the integer/log grid or beyond the log range (a
    model's noise or divergence), so the exact checks (``check_nonnegative``, ``io.check_same_scale``) do not apply
    to it. Its control cells are measured, not generated (the cells the model started from, as distgen writes them),
    so they must be on the truth's scale; compared by signatures that survive noise: the mean and the
    ``GENERATED_QUANTILE`` quantile of the values of the genes both files hold, in each file's control cells. Either
    further than ``GENERATED_SCALE_FACTOR`` from the truth's, either way, is a ``ScaleMismatchError`` (log2 or log10
    against the natural log, z-scores, raw counts against log values).
    """
    if pred is None or real is None:
        return
    stats = _control_stats(pred, real)
    if stats is None:
        return
    sp, sr, genes = stats
    off = []
    for what, p, r in (("mean", sp[0], sr[0]), (f"{GENERATED_QUANTILE:.0%} quantile", sp[1], sr[1])):
        if r > 0 and not (r / GENERATED_SCALE_FACTOR <= p <= r * GENERATED_SCALE_FACTOR):
            off.append(f"{what} {p:.4g} against {r:.4g} ({p / r:.3g} times)")
    if off:
        raise ScaleMismatchError(
            f"the {name} file is marked as a model's predictions (uns['distgen']['kind'] == 'pred'), which lets its "
            "generated values stray below 0 or off the count/log grid, but its control cells (measured, not generated) are "
            f"not on the real control cells' scale: {' and '.join(off)} over the {len(genes)} shared genes "
            "(log2(1 + x) of the same data is 1.44 times log1p, z-scores have a mean near 0, raw counts a far higher "
            f"quantile than log values). Preprocess the {name} cells as the real ones were (scanpy.pp.normalize_total then "
            "scanpy.pp.log1p, unscaled), or evaluate both files at one scale")


@dataclass
class FileChecks:
    """What ``check_files`` made of the files it was given: its notes, and which of the checks ``io.eval_data`` (and the
    per-context reader, ``pipeline.profile_eval.load_contexts``) would make again it already made, so that they read it
    here rather than re-derive the rule."""

    #: Notes for the report (a model's predictions below 0).
    notes: list[str] = field(default_factory=list)
    #: The files whose value scale was checked on its own (``check_scale(strict=True)``: log-normalised files a model did
    #: not generate); a file not named here still needs ``check_scale`` (or, at counts scale, ``check_counts``).
    scales: tuple[str, ...] = ()
    #: Whether the prediction was compared with the truth: ``check_same_scale`` (log scale) and ``check_holds_prediction``
    #: (``check_control_scale``), as ``eval_data(check_pred_scale=True)`` compares them. False for a model's predictions
    #: (``generated``), which ``check_generated_scale`` checks instead, and without both files.
    pair: bool = False


def check_files(cells: dict[str, Any], scale: str = "lognorm", generated: tuple[str, ...] = (),
                log_bases: dict[str, float] | None = None, truth: Any = None) -> FileChecks:
    """The value checks of files read for evaluation (``{name: Cells}``: ``pred``, ``real``, ``training``); what was
    checked, with the notes (``FileChecks``).

    Negative values are refused (``check_nonnegative``), except in predictions a model generated
    (``generated``: the names of files marked as predictions, ``uns["distgen"]["kind"] == "pred"``), where a model's
    noise can put some below 0: they are scored with a note, but must be on the truth's scale
    (``check_generated_scale`` against ``truth``, default ``cells["real"]``). Log-normalised ``pred`` and ``real``
    must carry the same normalisation (``check_same_normalization``) and, where both record one, the same log base
    (``log_bases``: ``LayoutInfo.log_bases``, ``check_log_bases``).
    """
    notes = []
    scaled = []
    # one sample of each file's values (io.ValueSample), shared by the checks below that read one
    samples = {k: ValueSample(c.X) for k, c in cells.items() if c is not None} if scale == "lognorm" else {}
    if scale == "lognorm" and cells.get("pred") is not None and cells.get("real") is not None and "pred" not in generated:
        check_same_scale(samples["pred"], samples["real"])  # first: two scales are named together, with the fix for the odd one
    for name, c in cells.items():
        if c is None:
            continue
        if scale == "lognorm" and name not in generated:
            check_scale(samples[name], name, strict=True)  # small raw counts too (eval_data's own check takes integers above 30 only)
            scaled.append(name)
            check_logged_once(c.X, name)
        if name in generated:
            check_generated_scale(c, truth if truth is not None else cells.get("real"), name)
            low = float(c.X.min()) if c.X.numel() else 0.0
            if low < 0:
                notes.append(f"the {name} file, a model's predictions, holds values below 0 (min {low:.4g}); scored as generated")
            continue
        check_nonnegative(c.X, name, scale)
    if scale == "lognorm" and cells.get("pred") is not None and cells.get("real") is not None:
        check_log_bases(log_bases or {})
        check_same_normalization(samples["pred"], samples["real"])
    against = truth if truth is not None else cells.get("real")
    held = cells.get("pred") is not None and against is not None and "pred" not in generated  # generated: check_generated_scale above
    if held:  # check_holds_prediction, and at log scale the control cells' scale
        check_control_scale(cells["pred"], against, scale=scale)
    # eval_data's comparison is check_holds_prediction and, at log scale, check_same_scale (made above with both files)
    pair = held and (scale != "lognorm" or cells.get("real") is not None)
    return FileChecks(notes, tuple(scaled), pair)
