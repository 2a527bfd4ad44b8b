"""``distgen evaluate --profile``: a file pair scored exactly as a reference profile scores it (no baselines, no plots).

Kept apart from ``distgen.pipeline.evaluate`` so that this path imports neither anndata nor the
baselines: well-formed ``.h5ad`` files are read with h5py (``distgen.evaluation.h5pair``), anything
else through ``distgen.data.layout``. A one-shot run is then mostly torch's import and the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.io import align, eval_data
from distgen.evaluation.metrics.celleval2_settings import NO_TARGET_GENES
from distgen.pipeline.outputs import check_output_folder, clear_evaluation


def load_pair(pred: Any, real: Any, pert_col: str | None = None, control: str | None = None,
              scale: str = "lognorm") -> tuple[EvalData, Any]:
    """A prediction/truth file pair as one ``EvalData`` (contexts pooled), with what was read and any notes.

    ``scale``: ``"lognorm"`` (raw counts refused) or ``"counts"`` (raw counts on both sides, fractional
    values refused). The truth's condition order (``LayoutInfo.condition_order``, the order cell-eval2
    visits groups in) is kept in ``data.cache["group_order"]``.
    """
    from distgen.evaluation.h5pair import read_pair_fast

    fast = read_pair_fast(pred, real, pert_col, control)  # h5py only; None: read through anndata
    info: Any
    if fast is not None:
        pred_c, real_c, info = fast
    else:
        from distgen.data import layout

        pred_c, real_c, _, info = layout.read_pair(pred, real, pert_col, control, celltype_col=None)
        info.notes = [n for n in info.notes if not n.startswith("contexts pooled")]  # evaluate_profile_files says it for a profile
    recorded = sorted(set(info.scales.values()))
    if recorded and recorded != [scale]:
        fix = ("write raw counts with distgen predict --counts MODEL --real REAL" if scale == "counts"
               else "score them with a counts profile (--profile vcc2026 or celleval2)")
        raise ValueError(f"the files record {recorded[0]} values (uns['distgen']['scale']) but this evaluation scores {scale}: {fix}")
    from distgen.evaluation.normalization import check_files, generated_files

    info.notes += check_files({"pred": pred_c, "real": real_c}, scale, generated_files(info.kinds))
    pred_c, notes = align(pred_c, real_c)
    info.notes += notes
    data = eval_data(pred_c, real_c, scale=scale)
    data.cache["group_order"] = info.condition_order
    return data, info


def context_columns(source: Any) -> dict[str, list[str] | None]:
    """Obs columns of ``source`` (an ``.h5ad`` path or AnnData) named like a cell-type column with 2+ distinct values
    (``None``: a column the fast reader cannot decode, named without its values)."""
    from distgen.types.layout import looks_like_celltype

    out: dict[str, list[str] | None] = {}
    if hasattr(source, "obs"):
        for c in map(str, source.obs.columns):
            if looks_like_celltype(c):
                out[c] = sorted(set(source.obs[c].astype(str).tolist()))
    else:
        import h5py

        from distgen.evaluation import h5pair

        try:
            with h5py.File(source, "r") as f:
                for c in h5pair._columns(f["obs"]):
                    if looks_like_celltype(c):
                        try:
                            out[c] = sorted(set(h5pair._column(f["obs"], c)[0].tolist()))
                        except Exception:  # an encoding the fast reader does not decode: named without its values
                            out[c] = None
        except OSError:
            return {}
    return {c: v for c, v in out.items() if v is None or len(v) > 1}


def pooled_contexts_note(real: Any) -> list[str]:
    """A note (and a warning) when the truth has a cell-type column: ``--profile`` pools contexts, as its reference does."""
    import warnings

    cols = context_columns(real)
    if not cols:
        return []
    said = "; ".join(repr(c) if v is None else f"{c!r} ({len(v)} values, e.g. {v[:4]})" for c, v in cols.items())
    note = (f"contexts pooled: the truth has cell-type column(s) {said}, and a --profile scores every perturbation over all "
            "its cells, as the reference does without a cell-type option. To score each cell type on its own, split both "
            "files by it and evaluate each pair, or run the default evaluation (no --profile) with --celltype-col")
    warnings.warn(note, stacklevel=2)
    return [note]


def reference_rules(data: EvalData, profile: Any) -> list[str]:
    """Apply ``profile``'s input rules to a pair read by ``load_pair``; returns notes for ``summary.json``.

    A strict (reference) profile refuses a truth perturbation without predicted cells, with the
    information cell-eval2's ``validate_pair`` gives (cell-eval 0.8.2 refuses such a pair too): a score
    over the predicted subset would reward leaving out hard perturbations. It scores a perturbation
    with a single cell on either side, as both references do (``data.invalid`` re-flagged with
    ``min_cells=1``). The ``distgen`` profile keeps the default evaluation's rules: such perturbations
    are NaN with the reason, and a note says the means are over the rest.
    """
    from distgen.evaluation.io import flag_invalid

    n_pred = data.pred.counts.tolist()
    missing = [p for p, n in zip(data.perts, n_pred) if n == 0]
    if profile.strict:
        if missing:
            n_real = data.n_perts + 1  # counted with the control label, as cell-eval2 counts them
            raise ValueError(f"perturbation sets differ: {n_real - len(missing)} pred vs {n_real} real (control included); "
                             f"pred-only (0)=[], real-only ({len(missing)})={missing[:20]}. Profile {profile.name!r} refuses "
                             f"the pair as {profile.reference} does: a score over the predicted perturbations alone can be "
                             "raised by leaving out hard ones. Predict every perturbation of the truth, or subset the truth to "
                             "the predicted perturbations if that is the comparison you mean")
        data.invalid.clear()
        flag_invalid(data, min_cells=1)
        single = [f"{p} ({side})" for side, pop in (("pred", data.pred), ("real", data.real))
                  for p, n in zip(data.perts, pop.counts.tolist()) if n == 1]
        if single:
            return [f"{len(single)} perturbation(s) with a single cell on a side, scored as {profile.reference} scores them "
                    f"(the default evaluation needs 2): {single[:10]}"]
        return []
    if missing:
        return [f"{len(missing)} of {data.n_perts} perturbations of the truth have no predicted cells (e.g. {missing[:5]}): "
                f"NaN for every metric, and the means in summary.json are over the other {data.n_perts - len(missing)}"]
    return []


#: The profiles whose reference is cell-eval2, which resolves each label to a gene to exclude from its own scores.
CELLEVAL2_PROFILES = ("celleval2", "vcc2026", "cell-eval-0.7.6")


def target_resolution(data: EvalData, profile: Any, no_target_genes: bool = False) -> list[str]:
    """cell-eval2's target-gene checks under its profiles: notes for labels naming no measured gene, or refusals.

    cell-eval2 excludes from a perturbation's scores the gene named exactly like its label, and so does
    distgen under these profiles. ``celleval2`` and ``vcc2026`` refuse a panel where NO label names a gene
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
        named = f" ({k} of them name a measured gene, scored WITH it: e.g. {[p for p in data.perts if p in genes][:5]})" if k else ""
        return [f"--no-target-genes: none of the {n} labels is treated as a target gene; nothing is excluded from the scores{named}"]
    if k == 0 and n and profile.name != "cell-eval-0.7.6":
        raise ValueError(f"no target resolves to a gene: 0 of {n} perturbation labels name one of the {len(genes)} genes "
                         f"(e.g. {unresolved[:5]}), so no target gene would be excluded from its own scores (cell-eval2 refuses "
                         "this too: construct IDs such as 'JAK2_KO' against gene symbols give a plausible wrong number). Relabel "
                         "the perturbations by their target gene symbol, or pass --no-target-genes (no_target_genes=True) if they "
                         "have no target gene (drugs, cytokines, cell types)")
    if unresolved:
        return [f"target-gene exclusion: {k}/{n} labels name a measured gene; the other {len(unresolved)} are scored WITHOUT "
                f"excluding their own gene (as cell-eval2 scores them; harmless only if those genes are absent from the panel): "
                f"{unresolved[:10]}"]
    return []


def evaluate_profile_files(pred: Any, real: Any, out: str | Path, profile: str = "celleval2", pert_col: str | None = None,
                           control: str | None = None, seed: int = 0, progress: bool = False, overwrite: bool = False,
                           celltype_col: str | None = None, no_target_genes: bool = False) -> dict[str, Any]:
    """``distgen evaluate --profile NAME``: score a file pair exactly as a reference profile does.

    The pair is read at the profile's value scale (raw counts for ``celleval2``/``vcc2026``,
    log-normalised for the others), contexts pooled as cell-eval2 pools them (a truth with a
    cell-type column gets a note and a warning; ``celltype_col`` is refused: per-context scoring
    under a profile is not implemented, see ``docs/metrics.md``); the reference's input rules apply
    (``reference_rules``, ``target_resolution``: ``no_target_genes`` is cell-eval2's ``--no-target-genes``);
    writes ``metrics.csv``
    and ``summary.json`` (and, for ``vcc2026``, ``vcc2026_score.csv``) into ``out``. Returns the
    summary (per metric the mean over perturbations; for ``vcc2026`` the normalised scores).
    """
    import csv

    from distgen.evaluation.profiles import resolve_profile, run_profile
    from distgen.evaluation.report import write_csv, write_json

    prof = resolve_profile(profile)
    if celltype_col is not None:
        raise ValueError(f"--celltype-col {celltype_col!r} is not supported with --profile: a profile scores each perturbation over "
                         "all its cells, contexts pooled, as cell-eval2 does (it has no cell-type option); cell-eval 0.8.2's "
                         "`run --celltype-col` scores each cell type as a separate pair. To score per cell type, split both files "
                         "by the column and run --profile on each pair, or drop --profile (the default evaluation scores contexts "
                         "one by one with --celltype-col)")
    out = Path(out)
    check_output_folder(out, "evaluate", overwrite)
    out.mkdir(parents=True, exist_ok=True)  # an output path that cannot be a folder fails before any compute
    data, info = load_pair(pred, real, pert_col, control, scale=prof.scale)
    info.notes += reference_rules(data, prof)
    info.notes += target_resolution(data, prof, no_target_genes)
    info.notes += pooled_contexts_note(real)
    table = run_profile(data, prof.name, progress=progress)
    clear_evaluation(out)  # no earlier evaluation's files (vcc2026_score.csv, report.html, plots) stay beside these
    write_csv(table, str(out / "metrics.csv"))
    summary: dict[str, Any] = {"profile": prof.name, "reference": prof.reference, "scale": prof.scale, "pert_col": info.pert_col,
                               "control": info.control, "n_perturbations": data.n_perts, "n_genes": len(data.genes),
                               "metrics": {c: table.mean(c) for c in table.values}, "notes": list(info.notes)}
    if prof.name == "vcc2026":
        from distgen.evaluation.vcc2026 import vcc2026_score

        result = vcc2026_score(data, control_label=info.control, seed=seed)
        rows = result.rows()
        with (out / "vcc2026_score.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        summary["vcc2026"] = {"avg_score": result.avg_score, "from_replicate": result.from_replicate,
                              "from_baseline": result.from_baseline, "avg_from_baseline": result.avg_from_baseline,
                              "user": result.user, "baseline": result.baseline, "replicate": result.replicate,
                              "left_out": result.reasons, "n_averaged": len(result.from_replicate), "n_scored": len(rows) - 1,
                              "averaged_note": result.averaged_note(), "seed": seed}
        if result.averaged_note():
            summary["notes"].append(f"vcc2026 avg_score is the {result.averaged_note()} (reasons in vcc2026_score.csv)")
    write_json(summary, str(out / "summary.json"))
    return summary
