"""``distgen evaluate``: score predictions against truth, calibrated by baselines and a ceiling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from distgen.commands.argtypes import nonnegative_int, positive_int

#: ``--baselines``' default.
BASELINES_ARG = "control,mean_perturbation,noncontrol_mean,additive,linear"

EXAMPLE = """examples:
  distgen evaluate --pred pred.h5ad --real real.h5ad --out eval/
  distgen evaluate --pred pred.h5ad --real test.h5ad --train train.h5ad --out eval/ \\
      --pert-col condition --control control
  distgen evaluate ... --metrics mse,pearson_delta,overlap_at_N --no-plots
  distgen evaluate --pred pred.h5ad --real real.h5ad --out eval/ --json | jq .metrics.mse
  distgen evaluate --pred pred_counts.h5ad --real real_counts.h5ad --out eval/ --profile vcc2026

Both files need the same genes, a perturbation column with the same labels (combinations as A+B)
and control cells; expression log-normalised (cell-eval's layout). With a cell-type column (celltype,
or --celltype-col) every cell type is scored on its own, against its own controls; --train cells fit
the baselines with their cell types. Writes metrics.csv (one row per perturbation, with the reason for
every NaN), calibration.csv, summary.json, summary.md, PNG plots and report.html (one self-contained
page: model vs baselines vs ceiling, per perturbation, distributions; --no-plots skips plots and page).
--out may hold an earlier evaluation (all its files are replaced or removed, other files kept); other files of
those names need --overwrite, and a run folder is refused.

--profile scores a pair exactly as a reference does instead (metrics.csv, summary.json and a report.html
of those tables; no baselines, ceiling or plots): celleval2 (cell-eval2's full v2 profile, raw counts), vcc2026 (the
Virtual Cell Challenge 2026 score, raw counts; also vcc2026_score.csv), cell-eval-0.7.6 and
cell-eval-0.8.2 (log-normalised), distgen. A truth perturbation missing from the prediction is
refused, as the references refuse it. A profile pools cell types (contexts), with a warning when the
truth has a cell-type column; with --celltype-col COL each context is scored as its own pair against
its own control cells, as cell-eval 0.8.2's `run --celltype-col` does (celleval2/vcc2026: the profile
run on each context alone): <context>_metrics.csv per context ('/' becomes '-', as cell-eval 0.8.2
names its files; | : * ? " < >, backslash and control characters become %XX, and a leading dot and the dot after a
Windows device name, .x -> %2Ex, CON.x -> CON%2Ex) with the label in a context column, metrics.csv
with every 'condition @ context' row and a context column, per_context in summary.json; vcc2026 gives
one score per context (<context>_vcc2026_score.csv), no pooled vcc2026 score. Both files need the same contexts, each with 2+ control cells on both sides.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predictions against truth (cell-eval metrics + distributional), with baselines and ceiling",
        description="Per-perturbation metrics that agree with cell-eval, distributional distances, negative baselines "
        "(control, mean perturbation, additive, linear) and a half-split ceiling, with normalised scores.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, help="predicted cells (.h5ad)")
    p.add_argument("--real", required=True, help="observed cells (.h5ad)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pert-col", default=None, help="obs column with perturbation labels (default: first of target, condition, perturbation, gene; two of them with different labels are refused: name one)")
    p.add_argument("--control", default=None, help="control label (default: the one of non-targeting, control, ctrl, NT, non_targeting, DMSO present; "
                   "two of them present are refused: name one, the other is scored as a perturbation)")
    p.add_argument("--celltype-col", default=None,
                   help="obs column of cell types / contexts, scored one by one against their own controls (default: celltype "
                   "when every file has it; other spellings such as cell_type are pooled, with a warning). With --profile: each "
                   "context a pair of its own, as cell-eval 0.8.2's run --celltype-col (without it a profile pools contexts)")
    p.add_argument("--batch-col", default=None,
                   help="obs column of the populations each group was measured in (donors, plates: default batch, as distgen "
                   "writes it, when a file has it); with several per group the summary adds the spread scores "
                   "(docs/metrics.md, 'Distribution-over-distributions')")
    p.add_argument("--spread", choices=("auto", "on", "off"), default="auto",
                   help="the spread scores of groups with several batches: auto (default: scored when their estimated work is "
                   "within a budget of about a minute on one core, else skipped with a note in summary.md), on, off")
    p.add_argument("--pool-contexts", action="store_true", help="score conditions with their contexts pooled (no per-context scoring)")
    p.add_argument("--train", default=None, help="training cells (.h5ad) to fit the mean_perturbation, additive and linear baselines")
    p.add_argument("--baselines", default=BASELINES_ARG,
                   help="comma-separated registered models ('' for none; matching_mean is Systema's opt-in combination baseline)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                   help="metric names, separated by spaces or commas: --metrics mse pearson_delta or --metrics "
                   "mse,pearson_delta (default: the full suite)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the half-split ceiling")
    p.add_argument("--ceiling-splits", type=positive_int, default=5, help="seeded disjoint half-splits the ceiling averages over (default 5; "
                   "summary.json reports their band)")
    p.add_argument("--replicate", choices=("half-split", "extrapolated"), default="half-split",
                   help="the ceiling's replicate: half-split (default: one half of the real cells against the other, half depth; a "
                   "perfect model scores above 1) or extrapolated (halves and quarters extrapolated to full depth; a perfect model "
                   "scores about 1); summary.json records it (docs/metrics.md)")
    p.add_argument("--interpolated", action="store_true", help="also score the interpolated duplicate, a second positive reference "
                   "(the half-split duplicate moved halfway to the non-control mean; docs/metrics.md)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots and the HTML report (report.html)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed for control sampling and the half split")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--profile", default=None, help="score as a reference profile: celleval2, vcc2026, cell-eval-0.7.6, cell-eval-0.8.2 "
                   "or distgen (see docs/metrics.md); contexts pooled unless --celltype-col; ignores --train, --baselines, "
                   "--metrics, --no-ceiling, --pool-contexts; refuses --replicate extrapolated")
    p.add_argument("--no-target-genes", action="store_true", help="with --profile celleval2/vcc2026/cell-eval-0.7.6: the "
                   "perturbations have no target gene (drugs, cytokines, cell types), as cell-eval2's --no-target-genes: no gene is "
                   "excluded from any score; without it a panel where no label names a gene is refused, unless the truth records "
                   "perturbation_type 'chemical' (files distgen predict wrote from a run with schema.perturbation_type: chemical)")
    p.add_argument("--json", action="store_true", help="print the whole summary (summary.json) as JSON on stdout, nothing else")
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that an earlier evaluation did not write "
                   "(a run folder's own files are never replaced)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_flush_denormal(True)
    from distgen.evaluation.report import json_text
    if args.profile is not None:
        from distgen.evaluation.profiles import resolve_profile

        try:
            resolve_profile(args.profile)
        except ValueError as e:  # a bad option value: exit 2, as argparse's own choices
            from distgen.config import ConfigError

            raise ConfigError(f"--profile: {e}") from None
        if args.replicate != "half-split":  # the profile's replicate is its reference's definition, never distgen's option
            from distgen.config import ConfigError

            raise ConfigError(f"--replicate {args.replicate} applies to distgen's own score; --profile {args.profile} scores as its "
                              "reference defines (vcc2026: cell-eval2's split-half replicate); drop one of the two")
        _inert_options(args)
        from distgen.pipeline.profile_eval import evaluate_profile_files  # light: no anndata, no baselines
        from distgen.wording import counted

        result = evaluate_profile_files(args.pred, args.real, args.out, args.profile, args.pert_col, args.control, args.seed,
                                        progress=not args.quiet, overwrite=args.overwrite, celltype_col=args.celltype_col,
                                        no_target_genes=args.no_target_genes, page=not args.no_plots)
        if args.json:
            print(json_text(result, indent=1))  # NaN as null: strict JSON, as summary.json
        elif result.get("per_context"):
            per = result["per_context"]
            print(f"profile {result['profile']} ({result['reference']}): {counted(len(per), 'context')} of {result['celltype_col']!r} scored "
                  f"one by one, {counted(result['n_perturbations'], '(perturbation, context) row')}")
            for ctx, part in per.items():
                vcc = part.get("vcc2026")
                print(f"  {ctx}: {counted(part['n_perturbations'], 'perturbation')}" + (f", vcc2026 avg_score {vcc['avg_score']:.4f}" if vcc else "")
                      + (f" ({vcc['averaged_note']})" if vcc and vcc["averaged_note"] else ""))
            files = [f for part in per.values() for f in part["files"]]
            print(f"wrote {args.out}/metrics.csv, summary.json" + (", vcc2026_score.csv" if result["profile"] == "vcc2026" else "")
                  + f", {', '.join(files)}{_page(args)}")
        else:
            head = result.get("vcc2026", {}).get("avg_score")
            partial = result.get("vcc2026", {}).get("averaged_note")
            print(f"profile {result['profile']} ({result['reference']}): {counted(result['n_perturbations'], 'perturbation')}"
                  + (f", vcc2026 avg_score {head:.4f}" if head is not None else "") + (f" ({partial})" if partial else ""))
            print(f"wrote {args.out}/metrics.csv, summary.json" + (", vcc2026_score.csv" if head is not None else "") + _page(args))
        args.fast_exit = True  # every output file is closed: the CLI may skip the interpreter's teardown (distgen.cli.fast_exit)
        return 0
    _inert_options(args)
    from distgen.pipeline.evaluate import evaluate_files

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s is not None else None  # noqa: E731
    summary = evaluate_files(
        args.pred, args.real, args.out, pert_col=args.pert_col, control=args.control, train=args.train,
        baselines=split(args.baselines) or [], metric_names=split(",".join(args.metrics)) if args.metrics is not None else None, ceiling=not args.no_ceiling,
        seed=args.seed, make_plots=not args.no_plots, progress=not args.quiet, celltype_col=args.celltype_col,
        by_context=not args.pool_contexts, ceiling_splits=args.ceiling_splits, overwrite=args.overwrite,
        interpolated=args.interpolated, replicate=args.replicate, batch_col=args.batch_col, spread=args.spread,
    ).summary
    if args.json:
        print(json_text(summary, indent=1))
        return 0
    head = {k: summary["metrics"][k] for k in ("pearson_delta", "mse", "overlap_at_N") if k in summary["metrics"]}
    from distgen.evaluation.report import clean_nan

    def said(v: dict[str, Any]) -> dict[str, Any]:  # an undefined score is null with its reason, never a bare NaN
        out = {"model": v["model"], "normalised": v["normalised"]}
        if v["normalised"] is None or v["normalised"] != v["normalised"]:
            out["normalised_note"] = v.get("normalised_note") or "undefined"
        elif v.get("normalised_caution"):  # a number whose scale is noise: said next to it
            out["normalised_note"] = v["normalised_caution"]
        test = v.get("vs_strongest_baseline") or {}
        if test.get("verdict"):  # a mean ahead of the baseline's is not a win: the paired verdict says whether there is one
            out["vs_strongest_baseline"] = {k: test.get(k) for k in ("baseline", "verdict", "claim", "wilcoxon_p", "claim_p", "holm_p")}
        return out

    print(json.dumps(clean_nan({k: said(v) for k, v in head.items()}), indent=1, default=str))
    page = ", report.html" if not args.no_plots and (Path(args.out) / "report.html").is_file() else ""
    print(f"wrote {args.out}/metrics.csv, summary.json, summary.md{page} ({summary['seconds']} s)")
    return 0


def _page(args: argparse.Namespace) -> str:
    """``", report.html"`` when the evaluation wrote its page (not under --no-plots, and not when writing it failed)."""
    return ", report.html" if not args.no_plots and (Path(args.out) / "report.html").is_file() else ""


#: Options of the default evaluation that a ``--profile`` evaluation does not read: (attribute, option, its default).
PROFILE_IGNORES = (("train", "--train", None), ("baselines", "--baselines", BASELINES_ARG),
                   ("metrics", "--metrics", None), ("no_ceiling", "--no-ceiling", False), ("pool_contexts", "--pool-contexts", False),
                   ("ceiling_splits", "--ceiling-splits", 5), ("interpolated", "--interpolated", False), ("batch_col", "--batch-col", None),
                   ("spread", "--spread", "auto"))


def _inert_options(args: argparse.Namespace) -> None:
    """Warn about options given that change nothing here (they were ignored without a word): the default evaluation's
    options under ``--profile``, and ``--no-target-genes`` where no cell-eval2 profile reads it."""
    from distgen.config import InertSettingWarning
    from distgen.errors import warn

    given = []
    if args.profile is not None:
        given = [option for attr, option, default in PROFILE_IGNORES if getattr(args, attr, default) != default]
        if given:
            warn(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect with --profile {args.profile}: a profile "
                 "scores its reference's metrics, with no baselines and no ceiling (drop --profile to use "
                 f"{'it' if len(given) == 1 else 'them'})", InertSettingWarning)
    if getattr(args, "no_target_genes", False):
        from distgen.evaluation.profiles import resolve_profile
        from distgen.pipeline.profile_eval import CELLEVAL2_PROFILES

        if args.profile is None or resolve_profile(args.profile).name not in CELLEVAL2_PROFILES:
            where = "without --profile" if args.profile is None else f"with --profile {args.profile}"
            warn(f"--no-target-genes has no effect {where}: it is cell-eval2's option, read by --profile "
                 f"{', '.join(CELLEVAL2_PROFILES)}", InertSettingWarning)
