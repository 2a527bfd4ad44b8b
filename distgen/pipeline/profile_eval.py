"""``distgen evaluate --profile``: a file pair scored exactly as a reference profile scores it (no baselines, no plots).

With ``--celltype-col`` each context is its own pair (``load_contexts``), as cell-eval 0.8.2's
``run --celltype-col`` splits the files. Kept apart from ``distgen.pipeline.evaluate`` so that this
path imports neither anndata nor the baselines: well-formed ``.h5ad`` files are read with h5py (``distgen.evaluation.h5pair``), anything
else through ``distgen.data.layout``. A one-shot run is then mostly torch's import and the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distgen.errors import InputDataError, warn
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.io import (
    MIN_CELLS,
    PAST_FLOAT32,
    PERFECT_WORDS,
    ValueScaleError,
    align,
    check_counts,
    check_scale,
    eval_data,
    float32_reads,
    same_source,
    scale_error_in,
)
from distgen.evaluation.metrics.celleval2_settings import NO_TARGET_GENES
from distgen.pipeline.outputs import check_output_folder, clear_evaluation, output_folder
from distgen.types import Cells
from distgen.types.layout import LayoutInfo, NoControlCells
from distgen.wording import counted, first_of

#: Why a prediction without control cells is refused by a profile that reads no predicted control (``read_files``).
UNREAD_CONTROLS_REASON = ("this profile reads no predicted control cell, but cell-eval2, whose score it reproduces, refuses a "
                          "prediction without the truth's control label (its perturbation sets differ): write at least one "
                          "control cell in the pred file")


def read_files(pred: Any, real: Any, pert_col: str | None = None, control: str | None = None, scale: str = "lognorm",
               celltype_col: str | None = None, keep_float64: bool = False, pred_controls: bool = True) -> tuple[Cells, Cells, Any]:
    """A prediction/truth file pair read, checked at ``scale`` and aligned: ``(pred, real, info)``.

    Contexts come from ``celltype_col`` only (no column is guessed: a profile pools contexts unless told);
    pooled, a truth column named like a cell type gets ``info.notes`` a ``pooled_contexts_note``.
    ``scale``: ``"lognorm"`` (raw counts refused) or ``"counts"`` (raw counts on both sides, fractional
    values refused). ``keep_float64`` (a profile's ``file_dtype``): a pair where a file's ``X`` is float64 is read as
    float64 on both sides (else float32). ``pred_controls=False`` (no metric reads the prediction's controls): a
    prediction without the control label is refused for cell-eval2's reason (``UNREAD_CONTROLS_REASON``), not for one
    the profile does not have.
    """
    try:
        return _read_files(pred, real, pert_col, control, scale, celltype_col, keep_float64)
    except NoControlCells as e:
        if pred_controls or e.side != "pred":
            raise
        raise e.because(UNREAD_CONTROLS_REASON) from None


def _read_files(pred: Any, real: Any, pert_col: str | None, control: str | None, scale: str, celltype_col: str | None,
                keep_float64: bool) -> tuple[Cells, Cells, Any]:
    """``read_files`` but for the reason of a refused prediction without control cells."""
    from distgen.evaluation.h5pair import read_pair_fast

    with float32_reads():  # a float64 value past float32's range: inf, refused by name (reference_rules), no numpy warning
        fast = read_pair_fast(pred, real, pert_col, control, celltype_col, guess_celltype=False,  # h5py only; None: anndata
                              keep_float64=keep_float64)
        info: Any
        if fast is not None:
            pred_c, real_c, info = fast
        else:
            from distgen.data import layout

            pred_c, real_c, _, info = layout.read_pair(pred, real, pert_col, control, celltype_col=celltype_col, guess_celltype=False,
                                                       keep_float64=keep_float64)
    recorded = sorted(set(info.scales.values()))
    if recorded and recorded != [scale]:
        from distgen.evaluation.io import value_scale

        cells = {"pred": pred_c, "real": real_c}
        read_as = {k: value_scale(cells[k].X) for k, s in info.scales.items() if s != scale and k in cells}
        wrong = {k: v for k, v in read_as.items() if v[0] == ("counts" if scale == "counts" else "log")}
        if wrong and len(wrong) == len(read_as):  # the values are what this evaluation scores: the record is what is wrong
            k, (_, vmax) = next(iter(wrong.items()))
            held = "raw counts (integers)" if scale == "counts" else "log-normalised (fractional)"
            raise InputDataError(f"the {k} file records uns['distgen']['scale'] = {info.scales[k]!r}, but its values are {held}, max "
                             f"{vmax:.4g}: the record contradicts the data. Correct it (adata.uns['distgen']['scale'] = {scale!r}, "
                             "or delete the key) and evaluate again")
        fix = ("write raw counts with distgen predict --counts MODEL --real REAL" if scale == "counts"
               else "score them with a counts profile (--profile vcc2026 or celleval2)")
        raise InputDataError(f"the files record {recorded[0]} values (uns['distgen']['scale']) but this evaluation scores {scale}: {fix}")
    from distgen.evaluation.normalization import check_files, generated_files

    info.checks = check_files({"pred": pred_c, "real": real_c}, scale, generated_files(info.kinds), info.log_bases)
    info.notes += info.checks.notes
    pred_c, notes = align(pred_c, real_c)
    info.notes += notes
    return pred_c, real_c, info


def _generated(info: Any, pred_c: Any, real_c: Any, scale: str, where: str = "") -> bool:
    """Whether the pred file is a model's predictions (``uns["distgen"]["kind"] == "pred"``), whose log-space values may
    leave the log range (a diverging model): then not refused as another scale (``read_files`` checked its control cells
    against the truth's), but scored as ``distgen evaluate`` scores it, with ``generated_range_note`` in ``info.notes``."""
    from distgen.evaluation.io import generated_range_note
    from distgen.evaluation.normalization import generated_files

    if scale != "lognorm" or "pred" not in generated_files(info.kinds):
        return False
    if (note := generated_range_note(pred_c.X, real_c.X)) is not None:
        info.notes.append(where + note)
    return True


def load_pair(pred: Any, real: Any, pert_col: str | None = None, control: str | None = None,
              scale: str = "lognorm", keep_float64: bool = False, pred_controls: bool = True) -> tuple[EvalData, Any]:
    """A prediction/truth file pair as one ``EvalData`` (contexts pooled), with what was read and any notes.

    ``scale``: ``"lognorm"`` (raw counts refused) or ``"counts"`` (raw counts on both sides, fractional
    values refused). The truth's condition order (``LayoutInfo.condition_order``, the order cell-eval2
    visits groups in) is kept in ``data.cache["group_order"]``. A truth with a cell-type column gets a
    note that contexts were pooled (``info.notes``). ``keep_float64``: ``read_files``'; the values are then scored in
    float64 (``eval_data``). ``pred_controls=False``: no metric reads the prediction's controls, one is enough (``eval_data``).
    """
    pred_c, real_c, info = read_files(pred, real, pert_col, control, scale, keep_float64=keep_float64, pred_controls=pred_controls)
    # what read_files' check_files compared (info.checks.pair) is not compared again here (the genes' order, all that align
    # changes, decides nothing in the comparison); a model's log-space predictions are scored with the 'predictions reach'
    # note, a model's counts compared here
    noted = _generated(info, pred_c, real_c, scale)
    data = eval_data(pred_c, real_c, scale=scale, keep_float64=keep_float64, check_pred_scale=not info.checks.pair and not noted,
                     pred_controls=pred_controls)
    data.cache["group_order"] = info.condition_order
    return data, info


def load_contexts(pred: Any, real: Any, celltype_col: str, pert_col: str | None = None, control: str | None = None,
                  scale: str = "lognorm", keep_float64: bool = False, pred_controls: bool = True) -> tuple[dict[str, EvalData], Any]:
    """A file pair split by ``celltype_col``: ``{context: EvalData}`` (sorted), each context its own pair with its own controls.

    As cell-eval 0.8.2's ``run --celltype-col`` splits both files and evaluates each cell type on its own.
    Refused, before anything is scored, naming what is wrong: contexts present in one file only (cell-eval
    0.8.2 asserts equal counts), a context with no or one control cell on a side (cell-eval 0.8.2 stops at
    the first context without controls; one control cell is refused as in a pooled run: every delta is taken
    from the control mean), two contexts whose file names would coincide, and a context whose pair is
    invalid (e.g. predicted perturbations the truth's context lacks: the error names the context).
    ``pred_controls=False`` (no metric reads the prediction's controls): one predicted control cell per context is enough.
    """
    from distgen.pipeline.outputs import (
        CONTEXT_SUFFIXES,
        MAX_FILE_NAME,
        context_prefix,
        file_name_key,
        long_context_names,
        one_file_reason,
    )

    pred_c, real_c, info = read_files(pred, real, pert_col, control, scale, celltype_col, keep_float64, pred_controls)
    # a whole file on the wrong scale is said of the file, not of its first context: a file whose scale read_files'
    # check_files checked (info.checks.scales: the stricter check, integers above 1, on the same rows; align only reorders
    # genes) is not checked again (one check per file); the others here (a model's file, counts)
    for side, cells in (("real", real_c), ("pred", pred_c)):
        if side not in info.checks.scales:
            (check_counts if scale == "counts" else check_scale)(cells.X, side)
    side_contexts = {side: set(c.contexts.tolist()) for side, c in (("real", real_c), ("pred", pred_c))}
    only_real, only_pred = sorted(side_contexts["real"] - side_contexts["pred"]), sorted(side_contexts["pred"] - side_contexts["real"])
    if only_real or only_pred:
        raise InputDataError(f"the files hold different contexts in {celltype_col!r}: missing from the prediction ({len(only_real)}) "
                         f"[{first_of(only_real, 20, render=repr)}], missing from the truth ({len(only_pred)}) "
                         f"[{first_of(only_pred, 20, render=repr)}]; each context is scored as its "
                         "own pair (as cell-eval 0.8.2's run --celltype-col does), so both files need the same contexts: predict every "
                         "context of the truth, or subset both files to the contexts you mean to compare")
    contexts = sorted(side_contexts["real"])
    prefixes: dict[str, str] = {}
    for ctx in contexts:
        # compared as a file system may store them (file_name_key): T_metrics.csv and t_metrics.csv are one file on macOS and Windows
        if (other := prefixes.setdefault(file_name_key(context_prefix(ctx)), ctx)) != ctx:
            raise InputDataError(f"contexts {other!r} and {ctx!r} would write the same files ({context_prefix(other)}_metrics.csv and "
                             f"{context_prefix(ctx)}_metrics.csv: {one_file_reason(context_prefix(other), context_prefix(ctx))}; "
                             "'/' becomes '-', as cell-eval 0.8.2 names them, and characters a file name may not hold are written %XX: "
                             "| as %7C, a leading dot and the first dot after a Windows device name such as CON.x as %2E); "
                             "rename one of them in both files")
    if long := long_context_names(contexts):  # refused before any scoring, not a traceback-like OSError at the first write
        raise InputDataError(f"{len(long)} context(s) of {celltype_col!r} named too long for a file name (e.g. "
                             f"{long[0][:60]!r}..., {len(long[0].encode())} bytes; each context's table is "
                             f"<context>_metrics.csv and a file name holds at most {MAX_FILE_NAME - len(max(CONTEXT_SUFFIXES, key=len))} "
                             f"bytes of context): give the contexts shorter names in both files (e.g. adata.obs[{celltype_col!r}] = "
                             f"adata.obs[{celltype_col!r}].map({{long_name: short_name}}))")
    problems = []
    for ctx in contexts:
        for side, cells in (("real", real_c), ("pred", pred_c)):
            n = int((cells.is_control & (cells.contexts == ctx)).sum())  # of_context's rows, not copied
            if n < (MIN_CELLS if side == "real" or pred_controls else 1):
                problems.append(f"{ctx!r}: the {side} file has {n} control cell(s) ({info.control!r})")
    if problems:
        raise InputDataError(f"{len(problems)} context(s) of {celltype_col!r} lack control cells: {'; '.join(problems[:10])}. Each "
                         f"context is scored against its own control cells (as cell-eval 0.8.2's run --celltype-col does), at least "
                         + (f"{MIN_CELLS} per file (one cell's noise would be scored as every effect)" if pred_controls else
                            f"{MIN_CELLS} in the real file (one cell's noise would be scored as every effect) and one in the pred file "
                            "(this profile scores against the real controls)")
                         + ": add control cells of those contexts to both files, or leave the contexts out of both")
    datas, empty = {}, []
    for ctx in contexts:
        try:
            pc, rc = pred_c.of_context(ctx), real_c.of_context(ctx)
            model_output = _generated(info, pc, rc, scale, f"{ctx}: ")
            data = eval_data(pc, rc, scale=scale, keep_float64=keep_float64, check_pred_scale=not model_output,  # the context is named below
                             pred_controls=pred_controls)
        except ValueScaleError as e:  # the class and the file's side kept: scale_hints names the layer holding the right values
            raise scale_error_in(e, f"context {ctx!r} of {celltype_col!r}: ") from e
        except ValueError as e:
            raise (InputDataError if isinstance(e, InputDataError) else ValueError)(f"context {ctx!r} of {celltype_col!r}: {e}") from e  # the data's problem stays one (exit 2)
        if not data.n_perts:
            empty.append(ctx)
            continue
        data.cache["group_order"] = info.condition_order
        datas[ctx] = data
    if not datas:
        raise InputDataError(f"no context of {celltype_col!r} has perturbed cells in the truth (contexts: [{first_of(contexts, 10, render=repr)}]): nothing to score")
    if empty:
        info.notes.append(f"{len(empty)} context(s) of {celltype_col!r} hold only control cells in both files, nothing to score: "
                          f"left out ({first_of(empty, 10, render=repr, enclosed=True)})")
    return datas, info


def reported_pooled_note(info: Any) -> list[str]:
    """The readers' ``pooled_contexts_note`` (a truth with a cell-type column, contexts pooled), warned as well as returned."""

    from distgen.types.layout import POOLED_NOTE

    said = [n for n in info.notes if n.startswith(POOLED_NOTE)]
    for note in said:
        warn(note)
    return said


def reference_rules(data: EvalData, profile: Any, context: str | None = None) -> list[str]:
    """Apply ``profile``'s input rules to a pair read by ``load_pair``; returns notes for ``summary.json``.

    A strict (reference) profile refuses a truth perturbation without predicted cells, with the
    information cell-eval2's ``validate_pair`` gives (cell-eval 0.8.2 refuses such a pair too): a score
    over the predicted subset would reward leaving out hard perturbations. It scores a perturbation
    with a single cell on either side, as both references do (``data.invalid`` re-flagged with
    ``min_cells=1``), and notes that the discrimination scores of a single perturbation are the
    references' trivial 1.0 (``TRIVIAL_NOTE``). It refuses NaN or inf values in any perturbation's cells, as
    cell-eval 0.8.2 and cell-eval2 refuse such a matrix (scored without those rows, the means would reward
    emitting NaN where a model fails). The ``distgen`` profile keeps the default evaluation's rules: such
    perturbations are NaN with the reason, and a note names them and says the means are over the rest; the note is
    also a warning on stderr (``context`` names the context in it), as the default evaluation warns: the means leave
    out what the model failed on.
    """
    from distgen.evaluation.io import flag_invalid

    n_pred = data.pred.counts.tolist()
    missing = [p for p, n in zip(data.perts, n_pred) if n == 0]
    if profile.strict:
        if missing:
            n_real = data.n_perts + 1  # counted with the control label, as cell-eval2 counts them
            raise InputDataError(f"perturbation sets differ: {n_real - len(missing)} pred vs {n_real} real (control included); "
                             f"pred-only (0)=[], real-only ({len(missing)})={missing[:20]}. Profile {profile.name!r} refuses "
                             f"the pair as {profile.reference} does: a score over the predicted perturbations alone can be "
                             "raised by leaving out hard ones. Predict every perturbation of the truth, or subset the truth to "
                             "the predicted perturbations if that is the comparison you mean")
        data.invalid.clear()
        flag_invalid(data, min_cells=1)
        if data.invalid:  # with every perturbation predicted and one cell enough, only NaN or inf values are left
            bad = [f"{data.perts[p]} ({why})" for p, why in sorted(data.invalid.items())]
            raise InputDataError(f"{counted(len(bad), 'perturbation')} {'holds' if len(bad) == 1 else 'hold'} NaN or inf values: "
                             f"{first_of(bad, 10, render=repr)}; {PAST_FLOAT32}. Profile {profile.name!r} refuses "
                             f"the pair as {profile.reference} does (it rejects a matrix with NaN or inf): scored without them, "
                             "the means would be over the other perturbations, and a model would gain by emitting NaN where it "
                             "fails. Fix the predictions (or the truth)" + ("" if profile.scale == "counts" else
                             ", or score with the default evaluation or --profile distgen, which report those perturbations "
                             "as NaN with the reason"))
        notes = []
        single = [f"{p} ({side})" for side, pop in (("pred", data.pred), ("real", data.real))
                  for p, n in zip(data.perts, pop.counts.tolist()) if n == 1]
        if single:
            notes.append(f"{len(single)} perturbation(s) with a single cell on a side, scored as {profile.reference} scores them "
                         f"(the default evaluation needs 2): {first_of(single, 10, render=repr)}")
        ranked = [col for col, m in profile.columns.items() if profile.params.get(m, {}).get("single_condition") == "reference"]
        if ranked and data.n_perts == 1:
            from distgen.evaluation.metrics.discrimination import TRIVIAL_NOTE

            notes.append(TRIVIAL_NOTE.format(names=", ".join(ranked), reference=profile.reference))
        return notes
    notes = []
    if missing:
        notes.append(f"{len(missing)} of {counted(data.n_perts, 'perturbation')} of the truth {'has' if len(missing) == 1 else 'have'} no predicted cells ({first_of(missing, 5, render=repr, enclosed=True)}): "
                     f"NaN for every metric, and the means in summary.json are over the other {data.n_perts - len(missing)}")
    other = {p: why for p, why in data.invalid.items() if data.pred.counts[p] > 0}  # too few cells, NaN or inf values
    if other:
        notes.append(f"{len(other)} of {counted(data.n_perts, 'perturbation')} {'is' if len(other) == 1 else 'are'} NaN for every metric (the means in summary.json are over "
                     f"the rest): " + first_of(sorted(other.items()), 10, "; ", lambda pw: f"{data.perts[pw[0]]}: {pw[1]}"))
    for note in notes:  # warned, not only written to summary.json: the printed means leave out what the model failed on
        warn(f"{context}: {note}" if context else note)
    return notes


#: The profiles whose reference is cell-eval2, which resolves each label to a gene to exclude from its own scores.
CELLEVAL2_PROFILES = ("celleval2", "vcc2026", "cell-eval-0.7.6")


def target_resolution(data: EvalData, profile: Any, no_target_genes: bool = False) -> list[str]:
    """cell-eval2's target-gene checks under its profiles: notes for labels naming no measured gene, or refusals.

    cell-eval2 excludes from a perturbation's scores the gene named exactly like its label, and so does
    distgen under these profiles. All three refuse a panel where NO label names a gene
    (construct IDs such as ``JAK2_KO`` against gene symbols: nothing would be excluded, a plausible wrong
    number), as cell-eval2 does, unless ``no_target_genes`` declares that the perturbations have no target
    gene (cell-eval2's ``--no-target-genes``): then no gene is excluded from any perturbation's scores
    (``data.cache[NO_TARGET_GENES]``, read by ``own_gene_columns``). Some labels unresolved: a note with the count
    and a sample, as cell-eval2 warns.
    """
    if profile.name not in CELLEVAL2_PROFILES:
        return []
    genes = set(data.genes)
    unresolved = [p for p in data.perts if p not in genes]
    n, k = data.n_perts, data.n_perts - len(unresolved)
    if no_target_genes:
        data.cache[NO_TARGET_GENES] = True
        resolved = [p for p in data.perts if p in genes]
        named = (f" ({k} of them {'names' if k == 1 else 'name'} a measured gene, scored WITH it: "
                 f"{first_of(resolved, 5, render=repr, enclosed=True)})") if k else ""
        return [f"--no-target-genes: none of the {counted(n, 'label')} is treated as a target gene; nothing is excluded from the scores{named}"]
    if k == 0 and n:
        raise InputDataError(f"no target resolves to a gene: 0 of {counted(n, 'perturbation label')} names one of the {counted(len(genes), 'gene')} "
                         f"({first_of(unresolved, 5, render=repr, enclosed=True)}), so no target gene would be excluded from its own scores (cell-eval2 refuses "
                         "this too: construct IDs such as 'JAK2_KO' against gene symbols give a plausible wrong number). Relabel "
                         "the perturbations by their target gene symbol, or pass --no-target-genes (no_target_genes=True) if they "
                         "have no target gene (drugs, cytokines, cell types)")
    if unresolved:
        one = len(unresolved) == 1
        return [f"target-gene exclusion: {k} of {counted(n, 'label')} {'names' if k == 1 else 'name'} a measured gene; the other {len(unresolved)} {'is' if one else 'are'} scored WITHOUT "
                f"excluding {'its' if one else 'their'} own gene (as cell-eval2 scores {'it' if one else 'them'}; harmless only if "
                f"{'that gene is' if one else 'those genes are'} absent from the panel): "
                f"{first_of(unresolved, 10, render=repr)}"]
    return []


def recorded_no_targets(info: LayoutInfo, profile: Any, no_target_genes: bool) -> bool:
    """``no_target_genes``, or True when the truth records ``perturbation_type: chemical`` under a cell-eval2 profile.

    ``distgen predict`` records the run's ``schema.perturbation_type`` in both files it writes
    (``uns["distgen"]["perturbation_type"]``): a truth of drugs or cytokines names no target gene, so the files are
    scored as cell-eval2's ``--no-target-genes`` scores them, with a note saying so (cell-eval2 itself needs the flag
    on these files). Files that record nothing, or ``genetic``, keep ``target_resolution``'s rule.
    """
    if no_target_genes or profile.name not in CELLEVAL2_PROFILES or info.perturbation_types.get("real") != "chemical":
        return no_target_genes
    info.notes.append("the truth records perturbation_type 'chemical' (distgen predict writes the run's schema): its labels name "
                      "no target gene, so it is scored as with --no-target-genes (cell-eval2 needs that flag on these files)")
    return True


def evaluate_profile_files(pred: Any, real: Any, out: str | Path, profile: str = "celleval2", pert_col: str | None = None,
                           control: str | None = None, seed: int = 0, progress: bool = False, overwrite: bool = False,
                           celltype_col: str | None = None, no_target_genes: bool = False, page: bool = True) -> dict[str, Any]:
    """``distgen evaluate --profile NAME``: score a file pair exactly as a reference profile does.

    The pair is read at the profile's value scale (raw counts for ``celleval2``/``vcc2026``,
    log-normalised for the others); the reference's input rules apply (``reference_rules``,
    ``target_resolution``: ``no_target_genes`` is cell-eval2's ``--no-target-genes``). Writes
    ``metrics.csv`` and ``summary.json`` (and, for ``vcc2026``, ``vcc2026_score.csv``) into ``out``, and, unless
    ``page=False``, ``report.html``: those tables on one page (``distgen.report.profile``).

    Without ``celltype_col`` contexts are pooled, as cell-eval2 pools them (a truth with a cell-type
    column gets a note and a warning). With it, each context is scored as its own pair against its own
    control cells (``load_contexts``), as cell-eval 0.8.2's ``run --celltype-col`` scores each cell type:
    ``{context}_metrics.csv`` per context (the context as a prefix, as cell-eval 0.8.2 names its files),
    ``metrics.csv`` with every ``condition @ context`` row and a ``context`` column, and ``per_context``
    in ``summary.json``; for ``vcc2026`` one score per context (``{context}_vcc2026_score.csv``, and
    ``vcc2026_score.csv`` with a context column): cell-eval2 defines no score over several contexts, so
    none is pooled. Returns the summary (per metric the mean over rows; for a pooled ``vcc2026`` run the
    normalised scores).
    """
    from distgen.evaluation.profiles import resolve_profile
    from distgen.evaluation.stored_scales import scale_hints
    from distgen.pipeline.pages import write_profile_page

    prof = resolve_profile(profile)
    out = Path(out)
    check_output_folder(out, "evaluate", overwrite)
    if same_source(pred, real):  # as the default evaluation warns
        warn(f"evaluate: the prediction and the truth are the same file ({pred}): every score is that of a perfect prediction; "
             "pass the generated cells as --pred and the measured ones as --real")
    # made now (a path that cannot be a folder fails before any compute), removed if this fails; a file on another scale
    # than the profile's is refused naming the layer or raw that holds the right one, when one does
    with output_folder(out), scale_hints({"pred": pred, "real": real}):
        summary = _score_files(pred, real, out, prof, pert_col, control, seed, progress, overwrite, celltype_col, no_target_genes)
        if page:  # once the cells are freed (the page reads the files just written): they were held while it was drawn
            write_profile_page(out)
    return summary


def _score_files(pred: Any, real: Any, out: Path, prof: Any, pert_col: str | None, control: str | None, seed: int, progress: bool,
                 overwrite: bool, celltype_col: str | None, no_target_genes: bool) -> dict[str, Any]:
    """``evaluate_profile_files``' reading, scoring and tables (all but the page): the summary. The cells read are this
    call's, freed when it returns."""
    from distgen.evaluation.digest import summary_digests
    from distgen.evaluation.profiles import reads_pred_controls, run_profile
    from distgen.evaluation.report import ROW_FINGERPRINTS, write_csv, write_json
    from distgen.evaluation.suite import check_row_contexts, context_rows, merge_tables, row_label
    from distgen.pipeline.outputs import EVALUATE_OUTPUTS, context_prefix

    datas: dict[str, EvalData]  # by context; "" (no context is named so: a missing label) when contexts are pooled
    files: dict[str, list[str]] = {}
    if celltype_col is None:
        data, info = load_pair(pred, real, pert_col, control, scale=prof.scale, keep_float64=prof.file_dtype,
                               pred_controls=reads_pred_controls(prof))
        reported_pooled_note(info)
        no_target_genes = recorded_no_targets(info, prof, no_target_genes)
        info.notes += reference_rules(data, prof)
        info.notes += target_resolution(data, prof, no_target_genes)
        datas = {"": data}
    else:
        by_context, info = load_contexts(pred, real, celltype_col, pert_col, control, scale=prof.scale, keep_float64=prof.file_dtype,
                                         pred_controls=reads_pred_controls(prof))
        no_target_genes = recorded_no_targets(info, prof, no_target_genes)
        check_row_contexts(list(by_context), celltype_col)  # rows "condition @ context", refused before any scoring
        datas = dict(by_context)
        for ctx, data in by_context.items():  # every context's input rules before any is scored
            try:
                info.notes += [f"{ctx}: {n}" for n in reference_rules(data, prof, ctx) + target_resolution(data, prof, no_target_genes)]
            except ValueError as e:
                raise (InputDataError if isinstance(e, InputDataError) else ValueError)(f"context {ctx!r} of {celltype_col!r}: {e}") from e  # the data's problem stays one (exit 2)
        files = {ctx: [f"{context_prefix(ctx)}_metrics.csv", *([f"{context_prefix(ctx)}_vcc2026_score.csv"] if prof.name == "vcc2026" else [])]
                 for ctx in by_context}
        check_output_folder(out, "evaluate", overwrite, names=[*EVALUATE_OUTPUTS, *(f for fs in files.values() for f in fs)])
    depths = None
    if info.provenance:  # distgen.data imports anndata and pandas (~0.9 s of a 2.4 s cold run): only for a file that records one
        from distgen.data.counts import unmeasured_note

        depths = unmeasured_note(info.provenance)  # --counts of a run without library sizes: summary.json, the page, stderr
    if depths:
        info.notes.append(depths)
        warn(depths)
    if same_source(pred, real):  # warned above; kept in summary.json, where distgen compare reads it
        info.notes.append(f"evaluate: the prediction and the truth are the same file ({pred}): {PERFECT_WORDS}")
    elif all(_one_population(d) for d in datas.values()):  # a copy of the truth: said as one file given twice
        said = (f"evaluate: the prediction and the truth are files with the same cells (labels and values): the prediction "
                f"file is a copy of the truth: {PERFECT_WORDS}; pass the generated cells as --pred and the measured ones as --real")
        warn(said)
        info.notes.append(said)
    tables = {ctx: run_profile(data, prof.name, progress=progress) for ctx, data in datas.items()}
    scores: dict[str, Any] = {}
    if prof.name == "vcc2026":
        from distgen.evaluation.vcc2026 import ScoreUndefined, unscored, vcc2026_score

        for ctx, data in datas.items():
            try:
                scores[ctx] = vcc2026_score(data, control_label=info.control, seed=seed)
            except ScoreUndefined as e:  # as cell-eval2's baseline refuses it: the metrics stand, the score is NaN with the reason
                scores[ctx] = unscored(str(e))
                info.notes.append(f"{ctx + ': ' if ctx else ''}vcc2026 score undefined: {e}")
    clear_evaluation(out)  # no earlier evaluation's files (vcc2026_score.csv, per-context tables, report.html, plots) stay beside these
    if celltype_col is None:
        table = tables[""]
    else:
        for ctx, t in tables.items():  # the label in a context column: the file name may hold it encoded (context_prefix)
            write_csv(context_rows(t, lambda p: p, ctx), str(out / files[ctx][0]))
        table = merge_tables([context_rows(t, lambda p, c=ctx: row_label(p, c), ctx) for ctx, t in tables.items()])
    written = write_csv(table, str(out / "metrics.csv"))
    summary: dict[str, Any] = {"profile": prof.name, "reference": prof.reference, "scale": prof.scale, "pert_col": info.pert_col,
                               "control": info.control, "celltype_col": celltype_col,
                               "no_target_genes": bool(no_target_genes) and prof.name in CELLEVAL2_PROFILES,  # read by those only
                               "n_perturbations": len(table.perts),
                               "n_genes": len(next(iter(datas.values())).genes),
                               "metrics": {c: table.mean(c) for c in table.values}, "notes": list(info.notes),
                               **summary_digests(datas, row_label if celltype_col is not None else (lambda p, c: p)),
                               ROW_FINGERPRINTS: written}
    if info.provenance:  # how the prediction was made (seed, checkpoint...), as its file records it
        summary["pred_provenance"] = info.provenance
    if celltype_col is None:
        if "" in scores:
            _write_vcc2026(out / "vcc2026_score.csv", scores[""].rows())
            summary["vcc2026"] = _vcc2026_summary(scores[""], seed)
            if scores[""].averaged_note():
                summary["notes"].append(f"vcc2026 avg_score is the {scores[''].averaged_note()} (reasons in vcc2026_score.csv)")
        write_json(summary, str(out / "summary.json"))
        return summary
    summary["contexts"] = list(tables)
    summary["per_context"] = {ctx: {"n_perturbations": len(t.perts), "metrics": {c: t.mean(c) for c in t.values}, "files": files[ctx]}
                              for ctx, t in tables.items()}
    how = ("as cell-eval 0.8.2's run --celltype-col scores each cell type" if prof.name == "cell-eval-0.8.2"
           else f"{prof.reference} run on that context's cells alone")
    summary["notes"].insert(0, (
        f"per-context runs of profile {prof.name}: each of the {len(tables)} contexts of {celltype_col!r} is scored as its own pair "
        f"against its own control cells ({how}). "
        "Per context: <context>_metrics.csv and per_context in summary.json; metrics.csv holds every 'condition @ context' row with "
        "a context column, and summary.json's metrics are means over all those rows (not a number the reference reports)"))
    if scores:
        rows = []
        for ctx, result in scores.items():
            mine = [{"context": ctx, **r} for r in result.rows()]  # the label: the file name may hold it encoded
            _write_vcc2026(out / files[ctx][1], mine)
            rows += mine
            summary["per_context"][ctx]["vcc2026"] = _vcc2026_summary(result, seed)
            if result.averaged_note():
                summary["notes"].append(f"{ctx}: vcc2026 avg_score is the {result.averaged_note()} (reasons in {files[ctx][1]})")
        _write_vcc2026(out / "vcc2026_score.csv", rows)
        summary["notes"].append("vcc2026: one score per context (per_context.<context>.vcc2026 in summary.json; vcc2026_score.csv "
                                "with a context column). cell-eval2 defines no vcc2026 score over several contexts, so none is pooled")
    write_json(summary, str(out / "summary.json"))
    return summary


def _one_population(data: EvalData) -> bool:
    """Whether ``data``'s predicted and real cells are the same cells, group by group (a copy of the truth as prediction)."""
    import torch

    p, r = data.pred, data.real
    return (p.X.shape == r.X.shape and p.control.shape == r.control.shape and torch.equal(p.offsets, r.offsets)
            and torch.equal(p.X, r.X) and torch.equal(p.control, r.control))


def _write_vcc2026(path: Path, rows: list[dict[str, Any]]) -> None:
    from distgen.evaluation.report import write_rows

    write_rows(rows, path, list(rows[0]))


def _vcc2026_summary(result: Any, seed: int) -> dict[str, Any]:
    """The vcc2026 block of ``summary.json`` for one scored pair (``distgen.evaluation.vcc2026.VCC2026Score``)."""
    rows = result.rows()
    return {"avg_score": result.avg_score, "from_replicate": result.from_replicate, "from_baseline": result.from_baseline,
            "avg_from_baseline": result.avg_from_baseline, "user": result.user, "baseline": result.baseline,
            "replicate": result.replicate, "left_out": result.reasons, "n_averaged": len(result.from_replicate),
            "n_scored": len(rows) - 1, "averaged_note": result.averaged_note(), "seed": seed}
