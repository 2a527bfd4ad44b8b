"""``distgen predict``: generate a run's held-out conditions as an AnnData in the cell-eval layout."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distgen.commands.argtypes import max_cells_arg, seed_arg

EXAMPLE = """examples:
  distgen predict runs/scdfm --out pred.h5ad                       # test split, newest checkpoint, EMA weights
  distgen predict runs/exp --out pred2.h5ad                        # a distgen run --out folder: its train/ run
  distgen predict runs/scdfm --out pred.h5ad --real real.h5ad      # also the matching ground truth
  distgen predict runs/scdfm --out val.h5ad --split val --checkpoint runs/scdfm/checkpoints/step_00001000
  distgen predict runs/scdfm --out best.h5ad --checkpoint best     # the best validation step's weights (train.patience runs)
  torchrun --nproc-per-node 4 -m distgen predict runs/scdfm --out pred.h5ad   # conditions split over ranks
  distgen predict runs/scdfm --out pred.h5ad --real real.h5ad --counts nb   # raw counts, for cell-eval2's vcc2026 preset
  cell-eval2 run -ap pred.h5ad -ar real.h5ad                       # counts; add --input-type lognorm without --counts
  distgen evaluate --pred pred.h5ad --real real.h5ad --out eval    # or distgen's own scoring (docs/metrics.md)
  distgen predict runs/scdfm --data new.h5ad --out new_pred.h5ad   # another file's perturbations, from its own control cells
  distgen predict runs/scdfm --data new.h5ad --perturbations KLF1 KLF1+MAP2K6 --out new_pred.h5ad --real new_real.h5ad
  distgen predict runs/sciplex --out at1000.h5ad --dose 1000                # every held-out drug at dose 1000
  distgen predict runs/sciplex --out curve.h5ad --dose dexa=300 dexa+saha=100+10   # those at these doses, the others at their own
  distgen predict runs/sciplex --out curve.h5ad --dose doses.yaml           # {condition: dose} from a file (YAML or JSON)

--dose asks the groups at other doses than their cells carry (data.schema.dose_col; docs/data.md, "Doses"), as
distgen.predict(..., doses=) does, the same cells for the same run, seed and doses: one number (every predicted
condition's atoms at it), or COND=DOSE pairs (conditions as the run or FILE writes them; a combination's atoms one dose
each, in the order written: B+A=2+5 is B at 2, A at 5; the others at their own dose), or a YAML file holding either. A
dose that is negative, NaN or for a condition not predicted is refused (exit 2); one outside the doses the atom was trained
at warns (DoseExtrapolationWarning). The --real truth stays the measured cells at their own dose: a prediction at another
dose is for reading, not for scoring. With --data, FILE's groups are asked at FILE's own doses unless --dose says otherwise.

--data FILE reads FILE with the run's schema and matches its genes (any order, extra genes ignored) and labels to the
run by name; each of its perturbed groups is generated from FILE's own control cells of its context (docs/your_data.md,
section 7). FILE is refused (exit 2) when it lacks a gene or an obs column of the run, has no control cells, holds a label
the run never saw, or sits on another value scale than the training cells.

Without the training file: --data FILE (with --real, --counts, --perturbations) works from what the run folder keeps of
it (data_record.json, data_record.safetensors; written at training and by distgen import), the prediction the same as
with the file. The run's own split (no --data) reads the training cells: when the file moved, give it with --train-data
PATH (checked against the run's content hash). A run trained or imported before distgen kept a data record needs the
file (or --train-data) for --data too; its first --data prediction from the file at its recorded path keeps the record
in the run folder (when the file's hash is the run's and the folder is free), and the next ones need no file.
  distgen predict runs/scdfm --out pred.h5ad --train-data /new/place/my_data.h5ad

An existing --out/--real is replaced only when it is an earlier prediction/truth (else --overwrite);
the run's own files (config.yaml, checkpoints/...) are never replaced.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="generate a run's held-out conditions (cell-eval layout)",
        description="Generate, for every (condition, context) of a split part, as many cells as it has real cells, from "
        "control cells of the same context; write them with real control cells appended (cell-eval's layout).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained run: the --out folder of distgen train, or of distgen run (its "
                   "train/ folder is used); a fitted model's experiment (model: additive...) holds no saved model and is refused")
    p.add_argument("--out", required=True, help="prediction .h5ad to write")
    p.add_argument("--split", default=None, choices=("test", "val", "train"), help="split part to generate (default test; not "
                   "with --data)")
    p.add_argument("--data", metavar="FILE", help="predict the perturbed cells of another .h5ad (or .zarr) instead of the run's split: "
                   "genes and labels matched to the run by name, each group generated from FILE's own control cells of its context")
    p.add_argument("--perturbations", nargs="+", metavar="LABEL", help="with --data: predict only these perturbations of FILE "
                   "(as FILE labels them; combinations as A+B or with FILE's delimiter)")
    p.add_argument("--train-data", metavar="PATH", help="where the run's training file is now, when it moved (or the run was "
                   "copied from another machine): read instead of the path the run recorded, its content checked against the "
                   "run's hash (another file is refused). Needed to predict the run's split; --data needs it only for a run "
                   "trained or imported before distgen kept a data record (data_record.json)")
    p.add_argument("--checkpoint", help="checkpoint directory, or 'last' (the default: the newest in RUN_DIR) or 'best' (the "
                   "checkpoint of the best validation step, train.monitor as early stopping judges it; refused for a run that "
                   "never validated)")
    p.add_argument("--weights", default="ema", choices=("ema", "raw"), help="EMA weights when the run kept them (default) or raw")
    p.add_argument("--real", help="also write the real cells of the same groups, same layout, to this .h5ad")
    p.add_argument("--seed", type=seed_arg, help="sampling seed (default: the run's train.seed)")
    p.add_argument("--genes", default=None, help="predict only a gene panel: 'hvg:N' (the N most variable genes of the predicted "
                   "groups' real and control cells, scDFM's evaluation panel) or a file of gene names (default: all genes)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out/--real file that is not a previous "
                   "prediction/truth (a run folder's own files are never replaced)")
    p.add_argument("--counts", nargs="?", const="round", default=None, choices=("round", "poisson", "nb"),
                   help="write raw counts instead of log-normalised values (cell-eval2's vcc2026 preset scores counts): "
                   "counts = MODEL(expm1(x) * size / target_sum), each generated cell's library size drawn from its group's "
                   "control cells, real cells at their own size; MODEL round (default: keeps the cell-level noise a generator "
                   "already samples), poisson or nb (dispersions fitted on the training cells; for mean-like outputs). "
                   "See docs/metrics.md")
    p.add_argument("--max-cells", type=max_cells_arg, default=None, metavar="N|all",
                   help="generate at most N cells per condition (a fixed subset of its real cells; --real holds the same cells). "
                   "Default: the run config's predict.max_cells_per_condition (500 where it does not say); all: every real cell")
    p.add_argument("--dose", nargs="+", default=None, metavar="DOSE|COND=DOSE|FILE",
                   help="ask the predicted groups at other doses (data.schema.dose_col) than their cells carry: one number for "
                   "all, COND=DOSE pairs (a combination's atoms A+B=2+5, in the order written; the others at their own dose) "
                   "or a YAML file of {condition: dose}; as distgen.predict(..., doses=). See the examples below")
    p.add_argument("--sampling", nargs="+", default=[], metavar="KEY=VALUE",
                   help="sample the trained weights with other sampling settings, e.g. model.dynamics.guidance=1.0 "
                   "(only model.dynamics.guidance, model.dynamics.sampler.*, model.dynamics.solver.*: nothing that changes a parameter)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from distgen.pipeline.predict import predict_run
    from distgen.train.distributed import env_from_torchrun

    doses = dose_option(args.dose)  # refused (exit 2) before the run is loaded
    if args.data is not None:
        return run_file(args, doses)
    if args.perturbations:
        from distgen.config import ConfigError

        raise ConfigError("--perturbations chooses perturbations of a --data FILE; the run's own split predicts every "
                          "condition of --split (to predict some conditions of the training file, give it as --data)")
    out = predict_run(args.run_dir, args.out, args.split or "test", args.checkpoint, args.weights, args.real, args.seed, args.genes,
                      args.counts, overwrite=args.overwrite, max_cells=args.max_cells,
                      sampling=args.sampling, train_data=args.train_data, doses=doses)  # errors: the boundary, with each error's own exit code
    if env_from_torchrun().is_main and out is not None:
        n_cond = len(set(out.conditions[~out.is_control].tolist()))
        from distgen.wording import counted

        print(f"wrote {args.out}: {counted(len(out), 'cell')} x {counted(out.n_genes, 'gene')}, {counted(n_cond, 'condition')} + controls")
    return 0


def run_file(args: argparse.Namespace, doses: Any = None) -> int:
    """``distgen predict RUN --data FILE``: ``distgen.pipeline.predict_file.predict_file``."""
    from distgen.config import ConfigError

    unused = [flag for flag, value in (("--split", args.split), ("--genes", args.genes)) if value is not None]
    if unused:
        raise ConfigError(f"{' and '.join(unused)} {'do' if len(unused) > 1 else 'does'} not apply with --data (FILE's perturbed "
                          "cells are predicted, on every gene of the run); leave "
                          f"{'them' if len(unused) > 1 else 'it'} out")
    import anndata as ad

    from distgen.pipeline.predict_file import predict_file
    from distgen.types.layout import KIND_COL, PERT_COL
    from distgen.wording import counted

    out = predict_file(args.run_dir, args.data, args.out, perturbations=args.perturbations, checkpoint=args.checkpoint,
                       weights=args.weights, real=args.real, seed=args.seed, counts=args.counts, overwrite=args.overwrite,
                       max_cells=args.max_cells, sampling=args.sampling, train_data=args.train_data, doses=doses)
    written = ad.read_h5ad(out, backed="r")
    try:
        kind = written.obs[KIND_COL].astype(str).to_numpy()
        n_cond = len(set(written.obs[PERT_COL].astype(str).to_numpy()[kind == "predicted"].tolist()))
        print(f"wrote {out}: {counted(written.n_obs, 'cell')} x {counted(written.n_vars, 'gene')}, {counted(n_cond, 'condition')} "
              f"+ controls (from {args.data})")
    finally:
        written.file.close()
    return 0


_HOW = ("give one number (every predicted condition's atoms at it: --dose 100), COND=DOSE pairs (--dose dexa=1000 saha=10; "
        "a combination's atoms one dose each, in the order written: A+B=2+5), or a YAML file of {condition: dose}")


def dose_option(tokens: Sequence[str] | None) -> Any:
    """``--dose``'s values as ``distgen.predict``'s ``doses``: None (not given), a number, or ``{condition: dose}`` (a
    number, or one per atom as a list). ``DoseError`` (exit 2) naming the forms for anything else; the doses themselves
    are checked where Python's are (``distgen.data.doses.group_doses``), with the same messages."""
    from distgen.data.doses import DoseError

    if not tokens:
        return None
    if len(tokens) == 1 and "=" not in tokens[0]:
        number = _number(tokens[0])
        if number is not None:
            return number
        path = Path(os.path.expanduser(tokens[0]))  # '~name/...' of no such user stays as written (Path.expanduser raised RuntimeError)
        if path.is_file():
            return _dose_file(path)
        raise DoseError(f"--dose {tokens[0]!r} is not a number, a COND=DOSE pair nor a file; {_HOW}")
    out: dict[str, Any] = {}
    for token in tokens:
        cond, sep, value = token.partition("=")
        if not sep or not cond.strip():
            why = "a single number (or file) is for all conditions, not one of several values" if _number(token) is not None else "not COND=DOSE"
            raise DoseError(f"--dose {token!r}: {why}; {_HOW}")
        numbers = [_number(v) for v in re.split(r"(?<![eE])\+", value)]
        if any(n is None for n in numbers):
            raise DoseError(f"--dose {token!r}: {value.strip()!r} is not a dose (a number, or one per atom joined by +); {_HOW}")
        key = cond.strip()
        if key in out:
            raise DoseError(f"--dose names {key} twice; give each condition one dose")
        out[key] = numbers[0] if len(numbers) == 1 else numbers
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _dose_file(path: Path) -> Any:
    """A ``--dose`` file: YAML (or JSON) holding a number or ``{condition: dose}`` (a number, a list per atom, or null)."""
    import yaml

    from distgen.data.doses import DoseError

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DoseError(f"--dose {str(path)!r}: not a YAML file ({exc}); {_HOW}") from None
    if isinstance(doc, bool) or not isinstance(doc, int | float | dict):
        raise DoseError(f"--dose {str(path)!r} holds {type(doc).__name__} {doc!r}, not a number nor a mapping of condition to dose; {_HOW}")
    return {str(k): v for k, v in doc.items()} if isinstance(doc, dict) else float(doc)
