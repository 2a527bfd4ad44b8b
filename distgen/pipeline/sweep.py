"""``distgen sweep``: run every cell of an ablation grid (resumably), then aggregate with statistics.

Rerunning the same sweep command continues it: a run whose folder holds ``DONE`` is skipped, any
other is launched again, and ``distgen run`` resumes its training from the newest checkpoint (so a
retry also continues where a crash left off). The results table is rebuilt from the finished runs'
``eval/metrics.csv`` each time: every (variant, seed, perturbation) row appears exactly once. A
sweep folder holding runs of another config is refused before anything runs, as is a grid with any
problem in any cell (all listed at once, with the runs they affect); the folder is locked while the
sweep runs (``distgen.train.lock``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distgen.config import ConfigError, load_config, save_yaml
from distgen.errors import clip_message, short
from distgen.evaluation.report import json_text
from distgen.pipeline.aggregate import (
    SUMMARY_METRICS,
    Comparison,
    identical_variants,
    plot_summary,
    read_metrics_csv,
    summary_markdown,
    write_results,
)
from distgen.pipeline.grid import Run, expand
from distgen.pipeline.pages import write_sweep_page
from distgen.train.lock import RunLock
from distgen.train.state_io import atomic_write_text

#: Where ``distgen run`` leaves the per-perturbation metrics of one run, relative to its directory.
METRICS_FILE = Path("eval") / "metrics.csv"
DONE_FILE = "DONE"

Runner = Callable[[str, Run, Path], int]


def subprocess_runner(config: str, run: Run, run_dir: Path) -> int:
    """Run one grid cell as ``python -m distgen run CONFIG OVERRIDES --out RUN_DIR`` (a fresh process)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "distgen", "run", config, *run.overrides, "--out", str(run_dir), "--no-progress"]
    with (run_dir / "log.txt").open("a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


@dataclass
class SweepResult:
    """What a sweep produced: directories, finished and failed runs, and the comparisons."""

    out: Path
    runs: list[Run]
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)


def sweep(
    config: str | Path,
    grid: Mapping[str, Sequence[Any]] | None = None,
    out: str | Path = "sweep",
    *,
    seeds: Sequence[int] | None = None,
    reference: str | None = None,
    jobs: int = 1,
    retries: int = 1,
    metrics: Sequence[str] = SUMMARY_METRICS,
    runner: Runner = subprocess_runner,
    progress: bool = True,
) -> SweepResult:
    """Run ``config`` at every cell of ``grid`` and aggregate.

    Parameters
    ----------
    config
        Preset name or YAML path. Its optional ``sweep:`` section may hold ``grid``, ``seeds`` and
        ``reference``; arguments given here take precedence.
    grid
        ``{dotted.key: [values]}``; ``train.seed`` is the replicate axis.
    out
        Sweep directory: ``runs/<variant>__seed<k>/`` per run, then ``results.csv``,
        ``summary.md``, ``summary.json`` and ``summary.png``.
    reference
        Variant the others are compared against (default: the first variant).
    jobs
        Runs at a time, each in its own process.
    retries
        Times a failed run is retried before it is reported as failed.
    """
    doc = load_config(config)
    spec = doc.get("sweep") or {}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("grid") or {}, Mapping):
        raise ConfigError("sweep: the `sweep:` section must be a mapping like {grid: {dotted.key: [v1, v2]}, seeds: [0, 1]}, "
                          f"got {short(spec)}")
    grid = {**dict(spec.get("grid") or {}), **dict(grid or {})}
    seeds = seeds if seeds is not None else spec.get("seeds")
    reference = reference or spec.get("reference")
    if jobs < 1 or retries < 0:
        raise ConfigError(f"sweep: jobs must be >= 1 and retries >= 0, got jobs={jobs}, retries={retries}")
    runs = expand(grid, seeds)
    variants = list(dict.fromkeys(r.variant for r in runs))
    if reference is None:
        reference = variants[0]
    elif reference not in variants:
        raise ConfigError(f"sweep: reference variant {reference!r} is not in the grid; variants: {', '.join(variants)}")
    out = Path(out)
    docs = check_cells(config, runs, metrics)  # every problem of every cell, before a folder is made or a run starts
    with RunLock(out, "sweep"):
        return _sweep(config, grid, seeds, reference, runs, variants, out, jobs, retries, metrics, runner, progress, docs)


def check_cells(config: str | Path, runs: Sequence[Run], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The run document of every cell (as ``distgen run`` will record it), all checked (``distgen.pipeline.checks``)."""
    from distgen.pipeline.checks import check_sweep
    from distgen.pipeline.experiment import experiment_document

    docs, problems = {}, []
    for r in runs:
        try:
            docs[r.slug] = experiment_document(config, r.overrides, progress=False)
        except ConfigError as exc:  # an override that cannot apply (a grid key replacing a section...)
            problems.append(f"{clip_message(str(exc), 400)} (run {r.slug})")
    if problems:
        raise ConfigError("sweep: " + "; ".join(dict.fromkeys(problems)))
    check_sweep(docs, metrics)
    return docs


def _sweep(
    config: str | Path, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None, reference: str, runs: list[Run],
    variants: list[str], out: Path, jobs: int, retries: int, metrics: Sequence[str], runner: Runner, progress: bool,
    docs: Mapping[str, Mapping[str, Any]],
) -> SweepResult:
    from distgen.pipeline.experiment import check_same_experiment

    for r in runs:  # a folder left by a sweep of another config is never mixed into this one's results
        check_same_experiment(out / "runs" / r.slug, docs[r.slug])
    save_yaml({"config": str(config), "grid": grid, "seeds": seeds, "reference": reference}, out / "sweep.yaml")

    result = SweepResult(out=out, runs=runs)
    todo = []
    for r in runs:
        if (out / "runs" / r.slug / DONE_FILE).exists():
            result.skipped.append(r.slug)
        else:
            todo.append(r)

    def attempt(r: Run) -> tuple[Run, bool]:
        run_dir = out / "runs" / r.slug
        for _ in range(retries + 1):
            if runner(str(config), r, run_dir) == 0 and (run_dir / METRICS_FILE).exists():
                if not (run_dir / DONE_FILE).exists():  # distgen run writes it itself; other runners may not
                    atomic_write_text(run_dir / DONE_FILE, "ok\n")
                return r, True
        return r, False

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, (r, ok) in enumerate(pool.map(attempt, todo), 1):
            (result.finished if ok else result.failed).append(r.slug)
            if progress:
                status = "done" if ok else f"FAILED (log: {out / 'runs' / r.slug / 'log.txt'})"
                print(f"[{i}/{len(todo)}] {r.slug}: {status}", file=sys.stderr)

    rows = []
    for r in runs:
        path = out / "runs" / r.slug / METRICS_FILE
        if (out / "runs" / r.slug / DONE_FILE).exists() and path.exists():
            for row in read_metrics_csv(path):
                rows.append({"variant": r.variant, "seed": r.seed, **row})
    if not rows:
        raise RuntimeError(f"sweep: no run finished; see the logs under {out / 'runs'}")
    present = [m for m in metrics if any(m in row for row in rows)]
    write_results(rows, out / "results.csv")
    text, result.comparisons = summary_markdown(rows, variants, reference, present, result.failed)
    (out / "summary.md").write_text(text)
    same = identical_variants(rows, variants, present)
    for v, other in same.items():
        print(f"warning: sweep variant {v} gave exactly the results of {other} (every seed, perturbation and metric): the "
              "setting that tells them apart had no effect (see summary.md)", file=sys.stderr)
    (out / "summary.json").write_text(json_text({
        "reference": reference, "variants": variants, "finished": result.finished, "skipped": result.skipped,
        "failed": result.failed, "comparisons": [c.__dict__ for c in result.comparisons], "identical": same,
    }))
    plot_summary(rows, variants, present, out / "summary.png")
    write_sweep_page(out, present)  # report.html: one row per variant, paired tests as intervals
    return result
