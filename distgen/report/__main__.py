"""``python -m distgen.report FOLDER``: (re)write the HTML report of an evaluation or a sweep folder from its files."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any

from distgen.errors import DistgenError

#: How the program names itself in its messages (argparse's usage errors, its own errors and warnings), as distgen's
#: commands say ``distgen COMMAND: error:``.
PROG = "python -m distgen.report"


def read_cells(eval_dir: Path) -> Any:
    """The prediction and truth files named in ``eval_dir/summary.json`` as ``EvalData`` (None when they are gone).

    A path is looked for as recorded (relative to the directory the evaluation ran in), then by its name
    inside ``eval_dir`` and next to it. An evaluation scored per context (``summary["contexts"]``) gives
    one ``EvalData`` per context, in that order, so the cells match its ``"condition @ context"`` rows;
    None when the files' ``celltype`` column does not hold those contexts. Files whose real cell counts
    differ from ``metrics.csv``'s ``n_cells_real``, or whose cells differ from the digests ``summary.json`` records,
    are not the ones evaluated: None, with a warning.
    """
    from distgen.report.files import check_summary, read_json

    path = eval_dir / "summary.json"
    summary = check_summary(read_json(path), path) if path.is_file() else {}
    pred, real = _locate(summary.get("pred"), eval_dir), _locate(summary.get("real"), eval_dir)
    if pred is None or real is None:
        return None
    cells = _as_scored(_read_cells(pred, real, summary), summary, eval_dir)
    if cells is not None and (why := _mismatch(cells, summary, eval_dir)):
        print(f"{PROG}: warning: {pred} and {real} are not the files this evaluation scored ({why}); the distributions "
              "section is left empty", file=sys.stderr)
        return None
    return cells


def _as_scored(cells: Any, summary: dict[str, Any], eval_dir: Path) -> Any:
    """``cells`` with each perturbation under the label ``eval_dir/metrics.csv`` gives it: an evaluation of an earlier
    distgen labels a float32 dose's row ``dexa@0.30000001192092896``, while its files are read back as ``dexa@0.3``
    (``layout.read_pair``); the page keeps the evaluation's own labels throughout (metrics, calibration, summary)."""
    import dataclasses

    from distgen.data.conditions import current_labels
    from distgen.evaluation.evaldata import EvalData
    from distgen.evaluation.suite import row_label
    from distgen.report.files import read_rows

    if cells is None or not (eval_dir / "metrics.csv").is_file():
        return cells
    rows = [str(r.get("perturbation", "")) for r in read_rows(eval_dir / "metrics.csv", ("perturbation",))]
    written = {now: r for r, now in current_labels(rows).items() if now != r}
    if not written:
        return cells
    datas = [cells] if isinstance(cells, EvalData) else list(cells)
    names = [str(c) for c in summary.get("contexts") or []]
    out = []
    for k, d in enumerate(datas):  # rows as _mismatch reads them: "condition @ context" when scored per context
        if len(datas) > 1:
            was = {row_label(p, names[k]): p for p in d.perts}
            back = {p: written[r].removesuffix(row_label("", names[k])) for r, p in was.items() if r in written}
        else:
            back = {p: written[p] for p in d.perts if p in written}
        out.append(dataclasses.replace(d, perts=tuple(back.get(p, p) for p in d.perts)))
    return out[0] if isinstance(cells, EvalData) else out


def _locate(name: Any, eval_dir: Path) -> Path | None:
    """A file the summary names: as recorded, else by its name in ``eval_dir`` or its parent (None when none is there)."""
    if not isinstance(name, str) or not name or name.startswith("<"):
        return None
    path = Path(name)
    for cand in (path, eval_dir / path.name, eval_dir.parent / path.name):
        if cand.is_file():
            return cand
    return None


def _mismatch(cells: Any, summary: dict[str, Any], eval_dir: Path) -> str:
    """Why ``cells`` are not what ``eval_dir/metrics.csv`` scored ("" when every row's real cell count agrees and, where
    ``summary.json`` records them, every row's real and predicted cells: ``distgen.evaluation.digest``)."""
    from distgen.evaluation.digest import PRED_DIGESTS, TRUTH_DIGESTS, summary_digests
    from distgen.evaluation.evaldata import EvalData
    from distgen.evaluation.suite import row_label
    from distgen.report.files import read_rows

    if not (eval_dir / "metrics.csv").is_file():
        return ""
    datas = [cells] if isinstance(cells, EvalData) else list(cells)
    names = [str(c) for c in summary.get("contexts") or []]
    have: dict[str, int] = {}
    for k, d in enumerate(datas):
        for i, p in enumerate(d.perts):
            have[row_label(p, names[k]) if len(datas) > 1 else p] = int(d.real.counts[i])
    rows = read_rows(eval_dir / "metrics.csv", ("perturbation",))
    for row in rows:
        label, n = row.get("perturbation", ""), row.get("n_cells_real", "")
        if label not in have:
            return f"no cells of {label!r}"
        try:
            scored = float(n) if n not in ("", None) else None
        except ValueError:
            scored = None
        if scored is not None and scored != have[label]:
            return f"{label!r}: {have[label]} real cells, metrics.csv scored {int(scored)}"
    recorded: dict[str, dict[str, Any]] = {key: summary[key] for key in (TRUTH_DIGESTS, PRED_DIGESTS) if isinstance(summary.get(key), dict)}
    if recorded:  # the same counts can hold other cells (a file rewritten since): the digests of what was scored say so
        found = summary_digests(dict(zip(names, datas, strict=True)) if len(datas) > 1 else {"": datas[0]},
                                row_label if len(datas) > 1 else (lambda p, c: p))
        for key, digests in recorded.items():
            for label in (row.get("perturbation", "") for row in rows):
                if digests.get(label) not in (None, found[key].get(label)):
                    side = "real" if key == TRUTH_DIGESTS else "predicted"
                    return f"{label!r}: other {side} cells than those scored (the same numbers of cells)"
    return ""


def _read_cells(pred: Path, real: Path, summary: dict[str, Any]) -> Any:
    """``EvalData`` of the pair as the evaluation grouped it (one per recorded context); None when the contexts are not there."""
    from distgen.data import layout
    from distgen.evaluation.io import align, eval_data, float32_reads, grouped, rows_of_context
    from distgen.evaluation.normalization import generated_files

    with float32_reads():  # as the evaluation read them
        pred_c, real_c, _, info = layout.read_pair(pred, real, summary.get("pert_col"), summary.get("control"),
                                                   celltype_col=summary.get("celltype_col"))  # the column the evaluation scored by
    # a model's predictions (uns['distgen']['kind'] == 'pred') are scored as generated, off the data's range included, as
    # distgen evaluate scored them: their scale check refused a run's own page ('apply scanpy.pp.log1p to the pred cells')
    check = "pred" not in generated_files(info.kinds)
    # rows as eval_data groups them: its populations are slices of these tables, the only copy of each (io.grouped)
    pred_c = grouped(align(pred_c, real_c)[0])  # one after the other: one table's copy at a time
    real_c = grouped(real_c)
    contexts = [str(c) for c in summary.get("contexts") or []]
    if not contexts:
        return eval_data(pred_c, real_c, check_pred_scale=check)
    # scored per context: one EvalData per context, as the evaluation made them (rows "condition @ context");
    # files whose contexts are not those (another cell-type column) cannot be matched to the rows
    if not set(contexts) <= set(map(str, real_c.contexts.tolist())):
        return None
    return [eval_data(rows_of_context(pred_c, c), rows_of_context(real_c, c), check_pred_scale=check, context=c) for c in contexts]


def _recorded_preset(eval_dir: Path) -> str | None:
    """The preset a run recorded in ``eval_dir/summary.json`` (``distgen run`` writes it), if any."""
    from distgen.report.files import read_json

    path = eval_dir / "summary.json"
    name = read_json(path).get("preset") if path.is_file() else None
    return name if isinstance(name, str) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write FOLDER/report.html from an evaluation folder (metrics.csv, calibration.csv, summary.json; "
        "the prediction/truth files and ../train when present) or from a sweep folder (results.csv, summary.json).",
    )
    p.add_argument("folder", help="evaluation folder (distgen evaluate --out) or sweep folder (distgen sweep --out)")
    p.add_argument("--out", default=None, help="output file (default FOLDER/report.html)")
    p.add_argument("--preset", default=None, help="preset (or config file) the run derives from, for the config diff (default: the summary's \"preset\")")
    p.add_argument("--no-cells", action="store_true", help="do not load the cells (skips the distributions section)")
    p.add_argument("--sections", default=None, help="comma-separated sections to include (default all: "
                   "headline,per-perturbation,distributions,training)")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="also render the page with a headless Chromium/Chrome into PNG (needs one installed)")
    p.add_argument("--size", default="1100x900", type=_window_size,
                   help="screenshot window WIDTHxHEIGHT in CSS pixels (default 1100x900)")
    p.add_argument("--shrink", type=int, default=None, metavar="WIDTH", help="scale the screenshot down to WIDTH pixels, fewer colours")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    out = Path(args.out) if args.out else folder / "report.html"
    if out.is_dir():  # was a traceback (IsADirectoryError) after the whole page was built
        p.error(f"--out {str(out)!r} is a folder; give the path of the page to write (e.g. {str(out / 'report.html')!r})")
    try:
        from distgen.report.profile import is_profile_dir, write_profile_report

        if (folder / "results.csv").is_file() or (folder / "sweep.yaml").is_file():  # a sweep's, with its table or not
            from distgen.report.sweep import load_sweep_dir, write_sweep_report

            path = write_sweep_report(load_sweep_dir(folder), out)
        elif is_profile_dir(folder):  # a --profile evaluation: its own page (the profile's tables; no sections to choose)
            path = write_profile_report(folder, out)
        else:
            from distgen.report.inputs import load_eval_dir
            from distgen.report.page import SECTIONS, write_report

            sections = tuple(x.strip() for x in args.sections.split(",") if x.strip()) if args.sections else SECTIONS

            preset, preset_name = None, args.preset or _recorded_preset(folder)
            if preset_name:
                from distgen.config import load_config

                preset = load_config(preset_name)
            cells = read_cells(folder) if not args.no_cells and "distributions" in sections else None
            path = write_report(load_eval_dir(folder, cells=cells, preset=preset, preset_name=preset_name), out, sections)
        print(path)
        if args.screenshot:
            from distgen.report.browser import screenshot, shrink

            width, height = args.size
            png = screenshot(path, args.screenshot, width, height)
            if args.shrink:
                shrink(png, args.shrink)
            print(png)
    except (OSError, KeyError, ValueError, RuntimeError, DistgenError) as e:
        # named as argparse names the program in its usage errors, as distgen's commands name themselves ("distgen
        # evaluate: error: ..."): a config error (--preset) exits 2, an unreadable folder 1
        from distgen.config import ConfigError

        usage = isinstance(e, ConfigError)
        message = _message(e)
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and _page_file(e.filename, out):
            # the page's temp file beside it (distgen.atomic): say where to write instead
            message = (f"{out.parent} is not writable (read-only, or another user's), so the page cannot be written to "
                       f"{out}; write it elsewhere: --out OTHER/report.html (the folder is only read)")
        print(f"{p.prog}: {'config error' if usage else 'error'}: {message}", file=sys.stderr)
        return 2 if usage else int(getattr(e, "exit_code", 1))
    return 0


def _page_file(filename: object, out: Path) -> bool:
    """Whether ``filename`` (an ``OSError``'s) is the temporary file the page ``out`` is written through (``distgen.atomic``:
    made in ``out``'s folder, so refused there when the folder is not writable); an input file in the same folder that
    cannot be read is not."""
    if not isinstance(filename, str):
        return False
    path = Path(filename)
    return path.parent == out.parent and path.name.startswith(f".{out.name}.") and path.name.endswith(".tmp")


def _window_size(text: str) -> tuple[int, int]:
    """``--size WIDTHxHEIGHT`` -> ``(width, height)``; argparse reports anything else as a usage error (exit 2)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(v.strip().isdigit() and int(v) > 0 for v in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in CSS pixels (e.g. 1100x900), got {text!r}")
    return int(parts[0]), int(parts[1])


def _message(exc: BaseException) -> str:
    """One line for ``exc``: a file-system error names its path (the target of a rename, not the temporary file)."""
    if isinstance(exc, OSError) and exc.strerror and (exc.filename2 or exc.filename):
        return f"{exc.strerror}: {str(exc.filename2 or exc.filename)!r}"
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
