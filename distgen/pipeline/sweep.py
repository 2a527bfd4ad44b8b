"""``distgen sweep``: run every cell of an ablation grid (resumably), then aggregate with statistics.

Rerunning the same sweep command continues it: a run whose folder holds ``DONE`` is skipped, any
other is launched again, and ``distgen run`` resumes its training from the newest checkpoint (so a
retry also continues where a crash left off). The results table is rebuilt from the finished runs'
``eval/metrics.csv`` each time: every (variant, seed, perturbation) row appears exactly once. A
sweep folder holding runs of another config is refused before anything runs, as is a grid with any
problem in any cell (all listed at once, with the runs they affect); the folder is locked while the
sweep runs (``distgen.train.lock``). A finished sweep in a folder that cannot be locked (read-only, another user's) is
read without the lock (``finished_sweep_without_lock``): nothing is left to run or to write. What a run folder holds and
whose it is (``DONE``, ``experiment.yaml``, the evaluation) is read by ``distgen.pipeline.run_folder``; this module
writes the sweep's records in it (``record_run``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distgen import markdown as md
from distgen.config import (
    ConfigError,
    check_overrides,
    check_repeated_overrides,
    load_config,
    load_yaml,
    save_yaml,
)
from distgen.data.conditions import current_labels
from distgen.errors import Interrupted, clip_message, short
from distgen.evaluation.report import ROW_FINGERPRINTS, json_text, read_table_csv
from distgen.evaluation.spread import spread_over_seeds
from distgen.evaluation.uncertainty import SAME_RESULTS_RTOL
from distgen.pipeline.aggregate import (
    SUMMARY_METRICS,
    Comparison,
    identical_variants,
    inert_axes,
    plot_summary,
    read_metrics_csv,
    replicate_noise,
    seeds_truth_mismatch,
    spread_seed_lines,
    summary_markdown,
    truth_mismatch,
    truth_record,
    write_results,
)
from distgen.pipeline.grid import SEED_KEY, Run, expand, parse_variants
from distgen.pipeline.pages import write_sweep_page
from distgen.pipeline.run_folder import (
    DONE_FILE,
    METRICS_FILE,
    SWEEP_DONE,
    RunFolder,
    check_done_readable,
    check_done_replaceable,
    check_run_folder,
    file_kind,
    finished_or_none,
    record_stamp,
    run_folders,
    stale_record,
    unrecorded_runs,
)
from distgen.train.lock import LOCK_NAME, FolderNotWritableError, RunLock, RunLockedError, describe, live_holder
from distgen.train.state_io import atomic_write_text
from distgen.wording import first_of, near

Runner = Callable[[str, Run, Path], int]


class StopOnSignal:
    """SIGINT/SIGTERM during a sweep: no run is started or retried any more, and the signal is passed on to the runs
    in progress, which stop at a step boundary with a checkpoint (``distgen.train.interrupt``) and resume when the
    sweep is run again. Without it a sweep's runs outlived a ``kill`` of the sweep (still writing, holding their
    locks), and Ctrl-C stopped the run in progress only for the sweep to retry it and start the next."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.children: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes] | None:
        """Start ``cmd`` unless a stop was requested (then None)."""
        with self.lock:
            if self.signal is not None:
                return None
            proc = subprocess.Popen(cmd, **kwargs)
            self.children.add(proc)
            return proc

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        code = proc.wait()
        with self.lock:
            self.children.discard(proc)
        return code

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = self.signal or signal.Signals(signum).name
        with self.lock:
            for proc in self.children:
                if proc.poll() is None:
                    proc.send_signal(signum)  # a run that got it already (Ctrl-C reaches the process group) takes it as one request

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


_STOP = StopOnSignal()  #: the running sweep's (``sweep`` replaces it); ``subprocess_runner`` starts its runs through it


#: The interpreter's one-letter options that take a value (``python --help``): the rest of their argument or the next one;
#: ``-c`` and ``-m`` end the options.
_WITH_VALUE = "cmWX"
#: Its long options that take the next argument as their value.
_LONG_WITH_VALUE = ("--check-hash-based-pycs",)


def own_warning_options() -> list[str]:
    """The ``-W`` options this interpreter was started with, as given and in order, read from its command line
    (``sys.orig_argv``) by the interpreter's option grammar: one-letter flags may be grouped (``-bWerror``), an option's
    value is the rest of its argument or the next argument, and the options end at ``-c``/``-m``, ``-``, ``--`` or the
    script. ``PYTHONWARNINGS`` (each run inherits it), ``-X dev`` and ``-b`` are not ``-W`` options, though
    ``sys.warnoptions`` holds their filters too (and holds an option once however often it was given). Each is one the
    interpreter took (``sys.warnoptions`` holds every ``-W`` option): a program embedding Python may have its own
    command line copied into ``sys.orig_argv`` without it being read as options."""
    taken = set(sys.warnoptions)
    return [option for option in _w_options(sys.orig_argv[1:]) if option in taken]


def _w_options(args: list[str]) -> list[str]:
    """The values of the ``-W`` options among the interpreter options ``args`` (``own_warning_options``' grammar)."""
    options: list[str] = []
    i = 0
    while i < len(args):
        arg, i = args[i], i + 1
        if arg in ("-", "--") or not arg.startswith("-"):
            break
        if arg.startswith("--"):
            i += arg in _LONG_WITH_VALUE
            continue
        for at, flag in enumerate(arg[1:], start=2):
            if flag not in _WITH_VALUE:
                continue
            value = arg[at:]
            if not value:
                if i == len(args):
                    return options  # no value: the interpreter refuses to start so
                value, i = args[i], i + 1
            if flag in "cm":
                return options
            if flag == "W" and value:  # an empty one filters nothing (and -W followed by nothing would take the next argument)
                options.append(value)
            break
    return options


def subprocess_runner(config: str, run: Run, run_dir: Path) -> int:
    """Run one grid cell as ``python -m distgen run CONFIG OVERRIDES --out RUN_DIR`` (a fresh process), with the sweep's own
    ``-W`` options (``python -W error -m distgen sweep``: its runs' warnings are errors too, as ``PYTHONWARNINGS`` makes them,
    inherited; ``-X`` options and ``-b`` are not passed on).

    Returns its exit code; ``INTERRUPTED`` without starting it once the sweep was asked to stop (``StopOnSignal``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, *(f"-W{option}" for option in own_warning_options()), "-m", "distgen", "run", config, *run.overrides,
           "--out", str(run_dir), "--no-progress"]
    stop = _STOP
    # log.txt is UTF-8: the command line is written so (a name the file system gave as bytes its encoding does not decode,
    # as those bytes), and the run is told to print in UTF-8 whatever the locale's encoding
    with (run_dir / "log.txt").open("a", encoding="utf-8", errors="surrogateescape") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = stop.popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONIOENCODING": "utf-8:backslashreplace"})
        if proc is None:
            log.write("not started: the sweep was interrupted\n")
            return INTERRUPTED
        return stop.wait(proc)


#: What ``subprocess_runner`` returns for a run it did not start because the sweep was interrupted.
INTERRUPTED = -2


@dataclass
class SweepResult:
    """What a sweep produced: directories, finished and failed runs, and the comparisons."""

    out: Path
    runs: list[Run]
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  #: failed run -> the error its log ends with
    #: finished run -> its variant, seed and ``TrainResult.diverged`` record (the loss exploded, stayed finite), or
    #: ``generation``: its evaluation's note that the generated values left the range of log-normalised expression
    diverged: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)


#: The keys of a config's ``sweep:`` section.
SWEEP_KEYS = frozenset({"grid", "seeds", "reference", "variants"})


def sweep(
    config: str | Path,
    grid: Mapping[str, Sequence[Any]] | None = None,
    out: str | Path = "sweep",
    *,
    seeds: Sequence[int] | None = None,
    reference: str | None = None,
    jobs: int = 1,
    retries: int = 1,
    metrics: Sequence[str] | None = None,
    runner: Runner = subprocess_runner,
    progress: bool = True,
    variants: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    adopt_unrecorded: bool = False,
) -> SweepResult:
    """Run ``config`` at every cell of ``grid`` and aggregate.

    Parameters
    ----------
    config
        Preset name or YAML path. Its optional ``sweep:`` section may hold ``grid``, ``seeds`` and
        ``reference``; arguments given here take precedence.
    grid
        ``{dotted.key: [values]}``; ``train.seed`` is the replicate axis.
    variants
        ``{name: [override, ...]}``: named changes of the config, one factor at a time (an ablation), each crossed with
        the grid and run at every seed (``[]``: the config as written). Replaces the ``sweep:`` section's ``variants``.
    out
        Sweep directory: ``runs/<variant>__seed<k>/`` per run, then ``results.csv``,
        ``summary.md``, ``summary.json`` and ``summary.png``.
    reference
        Variant the others are compared against (default: the first variant).
    metrics
        Metrics the summary compares (default: the config's ``evaluate.metrics`` where it sets them, which are all its
        runs compute, else ``SUMMARY_METRICS``).
    jobs
        Runs at a time, each in its own process.
    retries
        Times a failed run is retried before it is reported as failed.
    overrides
        Dotted overrides of the base config (``train.steps=50``), given to every run before its own; recorded in
        ``sweep.yaml``. One over a setting an axis or variant varies (the run's own would replace it), over ``sweep.*``
        or over ``base`` is refused; a sweep extended without them is refused as a changed base config is.
    adopt_unrecorded
        Take the runs another runner finished before the sweep recorded a run's config (``unrecorded_runs``: the sweep's
        ``DONE`` without ``experiment.yaml``, from before 2026-12-07) as runs of this config: the sweep writes their
        ``experiment.yaml`` and reads them as finished. Without it such a folder is refused: which config it ran cannot
        be told. Give it only for runs that ran this config: their rows become this sweep's.
    """
    check_config_readable_again(config)
    overrides = check_repeated_overrides(list(check_overrides(overrides)))
    doc = load_config(config, [x for x in overrides if not x.strip().startswith(("sweep.", "sweep=", "base="))])
    spec = doc.get("sweep") or {}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("grid") or {}, Mapping):
        raise ConfigError("sweep: the `sweep:` section must be a mapping like {grid: {dotted.key: [v1, v2]}, seeds: [0, 1]}, "
                          f"got {short(spec)}")
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:  # a misspelt key (`seed:`, `variant:`) was ignored: a sweep of other seeds or of the base config alone
        raise ConfigError(f"sweep: unknown key(s) {', '.join(map(repr, unknown))} in the `sweep:` section; it takes "
                          f"{', '.join(sorted(SWEEP_KEYS))}"
                          + "".join(f" (did you mean {m!r} for {k!r}?)" for k in unknown
                                    for m in near(k, sorted(SWEEP_KEYS))))
    grid = {**dict(spec.get("grid") or {}), **dict(grid or {})}
    variants = variants if variants is not None else spec.get("variants")
    seeds = seeds if seeds is not None else spec.get("seeds")
    reference = reference or spec.get("reference")
    if jobs < 1 or retries < 0:
        raise ConfigError(f"sweep: jobs must be >= 1 and retries >= 0, got jobs={jobs}, retries={retries}")
    if metrics is None:  # what the runs compute: the default list warned about each metric the config leaves out
        asked = (doc.get("evaluate") or {}).get("metrics") if isinstance(doc.get("evaluate"), Mapping) else None
        metrics = [asked] if isinstance(asked, str) else list(asked) if isinstance(asked, list) and asked else SUMMARY_METRICS
    runs = expand(grid, seeds, variants)
    if overrides:
        runs = with_base_overrides(runs, overrides)
    names = list(dict.fromkeys(r.variant for r in runs))
    if reference is None:
        reference = names[0]
    elif reference not in names:
        raise ConfigError(f"sweep: reference variant {reference!r} is not in the grid; variants: {', '.join(names)}")
    out = Path(out)
    docs = check_cells(config, runs, metrics)  # every problem of every cell, before a folder is made or a run starts
    for v, other in same_config_variants(runs, docs).items():  # said after the runs only ('Variants without effect')
        print(f"warning: sweep variant {v} resolves to the same config as {other} at every seed (an override that sets the "
              "value the config already has, or no override): its runs repeat the other's, which tells apart nothing but "
              "run-to-run nondeterminism; give it the setting it is meant to change", file=sys.stderr)
    global _STOP
    _STOP = StopOnSignal()
    try:
        lock = RunLock(out, "sweep").acquire()
    except FolderNotWritableError as exc:  # a finished sweep is only read (as distgen run reads a finished experiment)
        # another config's run is named, not only refused as not writable; a moved data file checked here is not hashed again
        folders = run_folders(out, runs)  # each DONE read once for every question below
        check_done_readable(folders.values())  # a DONE that cannot be read is refused, not read as the sweep's marker
        moved = check_run_folders(out, folders, docs, overrides, adopt_unrecorded)
        if (finished := finished_sweep_without_lock(out, runs, docs, metrics, reference, names, folders, moved)) is None:
            if damaged := damaged_runs_said(out, folders, metrics):
                raise FolderNotWritableError(f"{exc}. {damaged}") from None
            raise
        return finished
    with lock, _STOP:
        return _sweep(config, grid, seeds, reference, runs, names, out, jobs, retries, metrics, runner, progress, docs,
                      variants, overrides, adopt_unrecorded)


def damaged_runs_said(out: Path, folders: Mapping[str, RunFolder], metrics: Sequence[str]) -> str:
    """Why a sweep folder that cannot be written is not read as finished when a finished run in it is to be evaluated
    again (``RunFolder.again_why``: a hand-edited ``DONE``, a removed ``eval/metrics.csv`` or summary, or an evaluation by
    hand without some of the ``metrics`` the sweep compares), naming each such run folder and why: the sweep evaluates such
    a run again, which writes into the folder. "" when there is none (the refusal says only that the folder is not
    writable: a run unfinished, another grid or other metrics). ``folders``: ``run_folders`` of the runs."""
    said = [f"{folder.path}: {why}" for folder in folders.values() if (why := folder.again_why(metrics))]
    if not said:
        return ""
    shown = first_of(said, 3, "; ")
    return (f"It is not read as a finished sweep because {len(said)} finished run(s) in it must be evaluated again (no "
            f"step trained), which writes into the folder: {shown}. The sweep of a copy you can write (above) evaluates it "
            "again, as would a sweep run by a user who can write the folder")


def finished_sweep_without_lock(out: Path, runs: Sequence[Run], docs: Mapping[str, Mapping[str, Any]], metrics: Sequence[str],
                                reference: str, variants: Sequence[str], folders: Mapping[str, RunFolder],
                                moved: Mapping[str, Mapping[str, Any] | None] | None = None) -> SweepResult | None:
    """The result of a finished sweep in a folder whose lock cannot be taken (read-only, another user's), said on stderr with
    where a report can be written; None (the caller's refusal stands) unless nothing is left to do: its ``summary.json``
    holds exactly these runs, reference, variants and metrics, none failed, each run is finished for ``metrics``
    (``RunFolder.finished``; a ``distgen run`` run read as ``run_folder.finished_or_none`` reads it, which refuses another
    config's), and ``results.csv`` holds each run's ``eval/metrics.csv`` rows as they are now (a run evaluated again since is
    not in the summary). ``folders``: ``run_folders`` of the runs (each ``DONE`` read once; a ``distgen run`` record is read
    again after its summary, ``finished_unlocked``). ``moved``: the ``data_moved.json`` records ``check_run_folders``
    found, by slug (a moved data file is hashed once, by that check, not again by ``finished_or_none``)."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        slugs = [r.slug for r in runs]
        if (not isinstance(summary, dict) or sorted([*summary.get("finished", []), *summary.get("skipped", [])]) != sorted(slugs)
                or summary.get("failed") or summary.get("reference") != reference or summary.get("variants") != list(variants)
                or summary_metrics_of(summary) != list(metrics)):
            return None
        for r in runs:
            folder = folders[r.slug]
            if not folder.finished(metrics):
                return None
            known = (moved or {}).get(r.slug)
            if folder.record is not None and finished_or_none(folder.path, docs[r.slug], folder.evaluated_with, known,
                                                              folder) is None:
                return None
        if not (out / "summary.md").is_file() or not _results_hold_runs(out, runs, metrics):
            return None
        fields = set(Comparison.__dataclass_fields__)
        comparisons = []
        for c in summary.get("comparisons") or []:
            values: dict[str, Any] = {k: (float("nan") if v is None else v) for k, v in c.items() if k in fields}  # JSON null: NaN
            comparisons.append(Comparison(**values))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    print(f"note: {out} already holds this finished sweep; nothing run, its summary read without its lock ({out} cannot be "
          f"written). To write a report elsewhere: python -m distgen.report {out} --out OTHER/report.html", file=sys.stderr)
    return SweepResult(out=out, runs=list(runs), skipped=slugs, diverged=dict(summary.get("diverged") or {}),
                       comparisons=comparisons)


def summary_metrics_of(summary: Mapping[str, Any]) -> list[str] | None:
    """The metrics a sweep's ``summary.json`` compared, where it records them (``compared_metrics``; not ``metrics``, which
    names a run's evaluation summary), else None: a sweep that predates the record."""
    found = summary.get("compared_metrics")
    return [str(m) for m in found] if isinstance(found, list) else None


def _results_hold_runs(out: Path, runs: Sequence[Run], metrics: Sequence[str]) -> bool:
    """Whether ``results.csv`` holds each run's ``eval/metrics.csv`` rows, as they are now, for ``metrics``."""
    table = read_table_csv(out / "results.csv")
    for r in runs:
        rows = read_metrics_csv(out / "runs" / r.slug / METRICS_FILE)
        now = current_labels(str(row["perturbation"]) for row in rows)
        want = sorted((now[str(row["perturbation"])], *(repr(row.get(m)) for m in metrics)) for row in rows)
        got = sorted((str(row["perturbation"]), *(repr(row.get(m)) for m in metrics)) for row in table
                     if str(row.get("variant")) == r.variant and float(str(row.get("seed"))) == float(r.seed))
        if want != got:
            return False
    return True


def kill_hint(holder: Mapping[str, Any]) -> str:
    """``': kill PID'`` for a holder that names its pid, else ''."""
    return f": kill {holder['pid']}" if holder.get("pid") else ""


def busy_reason(holder: Mapping[str, Any]) -> str:
    """Why a run whose folder ``holder`` (``live_holder``) holds was not started: a ``distgen run``'s holder is the run an
    earlier sweep left going (after a ``kill -9`` of that sweep alone); another command (``distgen predict RUN``) is named
    as itself, not said to be such a run writing its log."""
    orphan = holder.get("purpose") == "run"
    what = (", which is still writing its log.txt (a run an earlier sweep started and left going, e.g. when that sweep was "
            "killed with kill -9)") if orphan else ""
    return (f"not started: its folder is in use by {describe(dict(holder))}{what}; nothing was written there now. Wait for that "
            f"process to finish (or stop it{kill_hint(holder)}), then run the sweep again: a finished run is read, a stopped one "
            "resumes at its checkpoint")


def with_base_overrides(runs: Sequence[Run], overrides: Sequence[str]) -> list[Run]:
    """``runs`` with the sweep's base ``overrides`` before each run's own; ``ConfigError`` for one that sets what a run's
    own overrides set (an axis, a variant, the seed: it would be replaced in those runs), the ``sweep`` section (give the
    grid with ``--grid``) or ``base`` (a grid axis ``base=[...]`` or the config itself chooses it)."""
    import dataclasses

    own = {x.split("=", 1)[0].strip() for r in runs for x in r.overrides if "=" in x}
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key == "base" or key == "sweep" or key.startswith("sweep."):
            raise ConfigError(f"sweep: base override {text!r} sets {key!r}, which chooses the sweep itself; give the config "
                              "to sweep as the first argument, and the grid with --grid / --variant / the sweep: section")
        hit = next((k for k in sorted(own) if k == key or key.startswith(k + ".")), None)
        if hit is not None:
            raise ConfigError(f"sweep: base override {text!r} sets what the sweep varies ({hit}, an axis, a variant or the "
                              "seeds), so each run's own value would replace it; drop it, or vary it in the grid")
        inside = sorted(k for k in own if k.startswith(key + "."))
        if inside:  # train={steps: 3} beside train.seed: not replaced, but the section every run then sets keys of
            raise ConfigError(f"sweep: base override {text!r} replaces the whole {key} section, which holds what the sweep "
                              f"varies ({', '.join(inside[:3])}: an axis, a variant or the seeds); set the keys inside it one "
                              f"by one ({_one_by_one(key, text.split('=', 1)[1])})")
    return [dataclasses.replace(r, overrides=(*overrides, *r.overrides)) for r in runs]


def _one_by_one(key: str, raw: str) -> str:
    """A section override's value as one override per key (``train={steps: 3}`` -> ``train.steps=3``), else ``KEY.NAME=VALUE``."""
    from distgen.config import parse_yaml

    try:
        value = parse_yaml(raw, key, override=True)
    except ConfigError:
        value = None
    if isinstance(value, Mapping) and value:
        return " ".join(f"{key}.{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in value.items())
    return f"{key}.NAME=VALUE"


def recorded_overrides_hint(out: Path, overrides: Sequence[str]) -> str:
    """Where ``out``'s ``sweep.yaml`` records other base overrides than ``overrides``: a sentence naming both (a sweep
    extended without the ``train.steps=50`` it was started with is refused as a changed config), else ''."""
    try:
        recorded = (load_yaml(out / "sweep.yaml") or {}).get("overrides") or []
    except (ConfigError, OSError, ValueError, AttributeError):
        return ""
    if not isinstance(recorded, list) or [str(x) for x in recorded] == list(overrides):
        return ""
    now = " ".join(overrides) if overrides else "none"
    return (f". The sweep was started with the base override(s) {' '.join(map(str, recorded))} ({out / 'sweep.yaml'}), "
            f"given now: {now}; give the same after the config to extend it")


def check_keeps_finished_runs(out: Path, runs: Sequence[Run]) -> None:
    """Refuse a sweep whose grid leaves out runs finished in ``out`` (``ConfigError``, before any run).

    Its ``results.csv``, summaries and page would replace those of the sweep that made them, without
    their rows: a second sweep of another grid into the same folder silently took the first one's
    results. A grid that keeps them (the same, or extended by values or seeds) reuses them.
    """
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        return
    slugs = {r.slug for r in runs}
    left_out = sorted(p.name for p in runs_dir.iterdir() if (p / DONE_FILE).exists() and p.name not in slugs)
    if left_out:
        shown = first_of(left_out, 4, enclosed=True)
        raise ConfigError(
            f"{out} holds finished runs this sweep's grid does not have ({shown}): its results.csv and summary would replace "
            f"theirs without them. Sweep into another --out, or give a grid that includes them (finished runs are reused)"
        )


def adopt_former_folders(out: Path, runs: Sequence[Run]) -> list[str]:
    """Rename the run folders of a sweep started before 2026-12-05 to the names its runs have now; returns the notes.

    Folders were then named from each value as YAML writes it (the string ``nan`` as ``-nan-``, the list ``[64, 64]``
    as ``-64,-64``, ``1e-5`` as ``-1.0e-05``); under the names of ``distgen.pipeline.grid`` such a run was not found,
    so a finished one made the sweep refuse its folder and an unfinished one was trained again from scratch. A folder
    in use by another process is refused (``RunLockedError``, naming the holder), as is a run that has a folder under
    both names. The folder's lock is held while it is renamed, so no run can start in it in between; the lock file
    that moved with it is removed before the lock is let go.
    """
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        return []
    current = {r.slug for r in runs}
    notes = []
    for r in runs:
        old, new = runs_dir / r.former_slug, runs_dir / r.slug
        if not r.former or r.former_slug in current or not old.is_dir():
            continue
        lock = RunLock(old, "sweep")
        try:
            lock.acquire()  # not while a run of it is still going, and none starts in it until it is renamed
        except RunLockedError as refused:
            raise RunLockedError(
                f"{out}: runs/{r.former_slug} (the folder of run {r.slug} before 2026-12-05) is in use by "
                f"{describe(refused.holder)}: it is renamed runs/{r.slug} only while no process holds it; wait for "
                "that process to finish, then run the sweep again"
            ) from None
        try:
            if new.exists():
                raise ConfigError(
                    f"{out}: run {r.slug} has two folders, runs/{r.former_slug} (its name before 2026-12-05) and runs/{r.slug}; "
                    f"keep the one to continue (move the other out of {runs_dir}) and run the sweep again"
                )
            old.rename(new)
            (new / LOCK_NAME).unlink(missing_ok=True)  # the lock file moved with the folder: gone before the lock is let go
        finally:
            lock.release()
        notes.append(f"runs/{r.former_slug} -> runs/{r.slug}")
    if notes:
        print(f"note: {out}: {len(notes)} run folder(s) renamed to the folder naming of 2026-12-05 (values as read, lists "
              f"joined by +): {first_of(notes, 4, '; ')}", file=sys.stderr)
    return notes


def same_config_variants(runs: Sequence[Run], docs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{variant: earlier variant}`` for each variant whose resolved run document equals an earlier variant's at every seed
    (``--variant a --variant b`` without overrides, or an override that sets the config's own value)."""
    by_variant: dict[str, dict[int, str]] = {}
    for r in runs:
        by_variant.setdefault(r.variant, {})[r.seed] = json.dumps(docs.get(r.slug), sort_keys=True, default=str)
    out: dict[str, str] = {}
    names = list(by_variant)
    for i, v in enumerate(names):
        for earlier in names[:i]:
            if earlier not in out and by_variant[v] == by_variant[earlier]:
                out[v] = earlier
                break
    return out


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
    docs: Mapping[str, Mapping[str, Any]], named: Mapping[str, Any] | None = None, overrides: Sequence[str] = (),
    adopt_unrecorded: bool = False,
) -> SweepResult:
    from distgen.pipeline.experiment import record_moved

    adopt_former_folders(out, runs)
    folders = run_folders(out, runs)  # each DONE read once, for every question before the runs
    check_done_replaceable(folders.values())  # a DONE folder: refused before anything is written or run
    if adopt_unrecorded and (adopted := unrecorded_runs(folders)):  # the caller says they ran this config: recorded
        for slug in adopted:
            save_yaml(dict(docs[slug]), out / "runs" / slug / "experiment.yaml")
        print(f"note: sweep: {len(adopted)} run(s) another runner finished without a record of their config taken as this "
              f"config's (adopt_unrecorded): {first_of(adopted, 4)}", file=sys.stderr)
    # the data file found at a new path is recorded by the sweep, under its own lock (its run folders are its to write,
    # as their DONE), taking no run folder's: a finished run is skipped, so its check is where it is hashed
    for slug, moved in check_run_folders(out, folders, docs, overrides).items():  # another config's folder is never mixed in
        record_moved(out / "runs" / slug, moved)
    check_keeps_finished_runs(out, runs)
    if SEED_KEY in grid:  # the axis replaces sweep.seeds: the seeds the runs use are recorded, not the config's
        seeds = list(dict.fromkeys(r.seed for r in runs))
    save_yaml({"config": str(config), "grid": grid, "seeds": seeds, "reference": reference,
               **({"variants": {k: list(v) for k, v in parse_variants(named).items()}} if named is not None else {}),
               **({"overrides": list(overrides)} if overrides else {})},
              out / "sweep.yaml")

    result = SweepResult(out=out, runs=runs)
    todo = []
    for r in runs:
        folder = folders[r.slug]
        if folder.finished(metrics):
            result.skipped.append(r.slug)
        else:
            todo.append(r)
            if gone := folder.removed_part:
                print(f"note: sweep: run {r.slug}: {gone}: it is evaluated again "
                      "(no step trained again)", file=sys.stderr)
            if lost := folder.metrics_lost(metrics):
                print(f"note: sweep: run {r.slug} was evaluated with {folder.by_hand_said} "
                      f"(by hand, after the sweep), without {', '.join(lost)}, which the sweep compares: it is evaluated again "
                      "with its config's evaluate.metrics (no step trained again)", file=sys.stderr)

    stop = _STOP

    busy: dict[str, str] = {}
    recorded: dict[str, RunFolder] = {}  # each run this pass finished, its folder as read once its run and record_run ended

    def attempt(r: Run) -> tuple[Run, bool | None]:
        run_dir = out / "runs" / r.slug
        if (holder := live_holder(run_dir)) is not None:  # an earlier sweep's run going on after a kill -9 of that sweep
            busy[r.slug] = busy_reason(holder)
            return r, False
        left = record_stamp(run_dir)  # a record the run leaves as it is (not distgen run's, which writes its own)
        for _ in range(retries + 1):
            if stop.signal is not None:
                return r, None  # interrupted: neither started again nor counted as failed
            if runner(str(config), r, run_dir) == 0 and (run_dir / METRICS_FILE).exists():
                recorded[r.slug] = record_run(run_dir, docs[r.slug], metrics, left)  # distgen run writes both itself; other runners may not
                return r, True
            if NOT_RETRIED.search(failure_reason(run_dir) or ""):
                break  # a NaN/inf loss recurs at the same step when its checkpoint is resumed, a refused config is refused
                # again (too large for the machine, a value only this cell has): a retry only repeats it
        return r, None if stop.signal is not None else False

    stopped: list[str] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, (r, ok) in enumerate(pool.map(attempt, todo), 1):
            (result.finished if ok else stopped if ok is None else result.failed).append(r.slug)
            if ok is False:
                result.failures[r.slug] = busy.get(r.slug) or failure_reason(out / "runs" / r.slug) or "no error in its log"
            if progress:
                status = "done" if ok else "stopped (resumes when the sweep is run again)" if ok is None else \
                    f"FAILED: {clip_message(result.failures[r.slug], 300)} (log: {out / 'runs' / r.slug / 'log.txt'})"
                print(f"[{i}/{len(todo)}] {r.slug}: {status}", file=sys.stderr)
    if stop.signal is not None:
        raise Interrupted(
            f"sweep interrupted by {stop.signal}: {len(result.finished)} run(s) finished now, {len(stopped)} stopped or not "
            f"started ({first_of(stopped, 4, enclosed=True)}); runs in progress stopped at a "
            f"checkpoint, and running the same command again resumes them; {out / 'results.csv'} was not rebuilt",
            stop.signal, 0, None, out,
        )

    rows = []
    diverged: list[tuple[str, int, str]] = []
    summaries: dict[str, list[dict[str, Any]]] = {}  # each finished run's eval/summary.json: the margin's replicate spread
    truths: dict[str, dict[int, dict[str, Any]]] = {}  # what each finished run was scored on (truth_mismatch)
    spreads: dict[str, dict[int, Any]] = {}  # each finished run's spread scores (eval/summary.json "spread"), if any
    tables_edited: dict[str, str] = {}  # runs whose metrics.csv is not what their evaluation wrote (compare.check_table)
    # the results hold the runs this pass finished or skipped as finished: a run it counted failed is under "Failed runs",
    # not aggregated from what its folder holds now (a concurrent distgen run that refused it "in use" and finished it
    # with other --metrics); each is aggregated only from the evaluation the pass decided from (a skipped run's DONE as
    # read before the runs, a finished run's as read once its run ended): that DONE still the file read, before and after
    # its table and summary are read (a stat each, DONE not read again), else it is named (its DONE or table gone, or
    # DONE rewritten: a concurrent re-run)
    readings = {**{slug: folders[slug] for slug in result.skipped}, **recorded}
    left_out: dict[str, str] = {}
    for r in runs:
        if (reading := readings.get(r.slug)) is None:
            continue
        path = out / "runs" / r.slug / METRICS_FILE
        if (why := run_changed(reading, path)) is None:
            table, doc = read_metrics_csv(path), run_summary(out / "runs" / r.slug)
            why = run_changed(reading)  # a rewrite begun while they were read
        if why is not None:
            left_out[r.slug] = why
            print(f"warning: sweep: run {r.slug} was {_finished_when(r.slug in recorded)}, but {why}: its rows are left out of "
                  "the results; run the sweep again once that run has finished", file=sys.stderr)
            continue
        edited = run_table_note(path, table, doc, r.slug, out / "runs" / r.slug)
        if edited:  # its rows are aggregated as they are now, and said (summary.md, summary.json, the page)
            tables_edited[r.slug] = edited
            print(f"warning: sweep: {clip_message(edited, 400)}", file=sys.stderr)
        now = current_labels(str(row["perturbation"]) for row in table)  # an earlier distgen's dexa@0.30000001192092896: dexa@0.3
        for row in table:
            rows.append({"variant": r.variant, "seed": r.seed, **row, "perturbation": now[str(row["perturbation"])]})
        if doc is not None:
            summaries.setdefault(r.variant, []).append(doc)
        truths.setdefault(r.variant, {})[r.seed] = truth_record(doc)
        spreads.setdefault(r.variant, {})[r.seed] = (doc or {}).get("spread")
        d = training_diverged(doc)
        g = None if d else generation_diverged(doc)
        if g:  # training went well, sampling did not: the variant's scores are those of cells far off the data
            result.diverged[r.slug] = {"variant": r.variant, "seed": r.seed, "generation": g}
            diverged.append((r.variant, r.seed, f"generation: {g}"))
            print(f"warning: sweep: run {r.slug}: {clip_message(g, 240)}; its scores are marked in summary.md", file=sys.stderr)
        if d:  # its scores are in the table, as measured, and marked: a diverged model is a result of that setting
            result.diverged[r.slug] = {"variant": r.variant, "seed": r.seed, **d}
            diverged.append((r.variant, r.seed, f"the training loss exploded at step {d['step']:.0f} to {d['loss']:.4g} "
                             f"(first step {d['first_loss']:.4g}, lr {d['lr']:.3g})"))
            print(f"warning: sweep: run {r.slug} diverged in training (loss {d['loss']:.4g} at step {d['step']:.0f}); "
                  "its scores are marked in summary.md", file=sys.stderr)
    if not rows:
        raise RuntimeError(f"sweep: no run finished; see the logs under {out / 'runs'}")
    present = [m for m in metrics if any(m in row for row in rows)]
    absent = [m for m in metrics if m not in present]
    if absent:  # asked for, but no run's evaluation has it: said, not silently left out of the summary
        print(f"warning: sweep: {', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not in the summary: no finished run "
              "computed it (a run evaluates its config's evaluate.metrics); add it there and run the sweep in a new --out, or "
              f"evaluate its runs again with distgen run CONFIG OVERRIDES --out RUN --metrics {','.join(metrics)} (every metric "
              "the summary compares: a run evaluated without one of them is evaluated again with its config's)", file=sys.stderr)
    fingerprints = write_results(rows, out / "results.csv")
    text, result.comparisons = summary_markdown(rows, variants, reference, present, result.failed, result.failures, diverged,
                                                replicate_noise(summaries, present), truths)
    apart = {v: why for v in variants if v != reference and (why := truth_mismatch(truths, v, reference))}
    for v, why in apart.items():  # each why is a sentence (the comprehension keeps only those)
        print(f"warning: sweep variant {v} was {why}: its rows are not paired with the reference's, so no side is named "
              "(verdict 'truths differ'; see summary.md)", file=sys.stderr)
    seeds_apart = {v: why for v, why in seeds_truth_mismatch(truths).items() if v in variants}
    for v, why in seeds_apart.items():
        print(f"warning: sweep variant {v}: {why}; its mean and sd over seeds mix two data sets (the data file changed "
              "between two invocations of the sweep?); see summary.md", file=sys.stderr)
    if seeds_apart:
        text = text.rstrip("\n") + "\n\n## Seeds scored on other real data\n\n" + (
            "The runs of one variant differ in their training seed alone, yet these were scored on other real cells at one seed "
            "than at another (a data file replaced between two invocations of this sweep, one that extended its seeds or ran "
            "a failed run again): their mean and sd over seeds mix two data sets, and each seed's paired difference is over the "
            "data of that seed. Sweep into a new --out to score every run on one version of the data.\n\n") + "".join(
            f"- {md.code(v)}: {md.inline(why)}\n" for v, why in seeds_apart.items())
    if tables_edited:
        text = text.rstrip("\n") + "\n\n## Tables edited after their evaluation\n\n" + "".join(
            f"- `{slug}`: {why}\n" for slug, why in tables_edited.items())
    if left_out:
        text = text.rstrip("\n") + "\n\n## Finished runs left out\n\n" + "".join(
            f"- `{slug}`: {_finished_when(slug in recorded)}, but {why}: its rows are not in these results; run the sweep "
            "again once that run has finished\n" for slug, why in left_out.items())
    spread = spread_over_seeds({v: spreads[v] for v in variants if v in spreads})
    if spread:
        text = text.rstrip("\n") + "\n" + "\n".join(spread_seed_lines(spread)) + "\n"
    same = identical_variants(rows, variants, present)
    axes = inert_axes({r.variant: tuple(x for x in r.overrides if not x.startswith(f"{SEED_KEY}=")) for r in result.runs
                       if r.variant in variants}, same)
    if axes:
        text = text.rstrip("\n") + "\n\n## Settings without effect\n\n" + "".join(
            f"- {md.code(k)}: every value ({', '.join(md.code(v) for v in vals)}) gave the same results wherever the other "
            "settings were equal: the model does not read it in this configuration\n" for k, vals in axes.items())
    atomic_write_text(out / "summary.md", text)
    for v, other in same.items():
        print(f"warning: sweep variant {v} gave the results of {other} (every seed, perturbation and metric, within "
              f"{SAME_RESULTS_RTOL:g} of each metric's size): the setting that tells them apart had no effect (see summary.md)",
              file=sys.stderr)
    for k, vals in axes.items():
        print(f"warning: sweep setting {k} had no effect: each of its values ({', '.join(vals)}) gave the same results "
              "wherever the other settings were equal (a setting the model does not read in this configuration; see summary.md)",
              file=sys.stderr)
    atomic_write_text(out / "summary.json", json_text({
        "reference": reference, "variants": variants, "compared_metrics": list(metrics), "finished": result.finished, "skipped": result.skipped,
        "failed": result.failed, "failures": result.failures, "diverged": result.diverged, "comparisons": [c.__dict__ for c in result.comparisons], "identical": same,
        "inert_settings": axes, "metrics_not_computed": absent, "truths_differ": apart, "seeds_truths_differ": seeds_apart, "tables_edited": tables_edited,
        "spread": spread, **({"left_out": left_out} if left_out else {}),
        ROW_FINGERPRINTS: fingerprints,
    }))
    plot_summary(rows, variants, present, out / "summary.png")
    write_sweep_page(out, present)  # report.html: one row per variant, paired tests as intervals
    return result


#: How the error of a run that stopped on a NaN/inf loss or gradient begins (``NonFiniteLossError``; ``distgen.train.trainer``).
NON_FINITE = re.compile(r"^non-finite (loss|gradient norm) at step ")
#: Failures a retry repeats: a NaN/inf loss (at the same step of the resumed checkpoint) and a refusal of the run's config.
NOT_RETRIED = re.compile(NON_FINITE.pattern + r"|^config error: ")
#: The error line ``distgen.cli.report`` prints: ``distgen run: error: ...``, ``... config error: ...``, ``... internal error: ...``.
_ERROR_LINE = re.compile(r"^distgen [\w-]+: (?:error: (.*)|((?:config|internal) error: .*))$")


def run_changed(folder: RunFolder, table: Path | None = None) -> str | None:
    """Why a run the pass aggregates (``folder``: its reading, when the pass skipped it as finished or once its run ended)
    no longer holds the evaluation the pass decided from, as a clause: its ``DONE`` gone (or ``table``, its
    ``eval/metrics.csv``, when given) or rewritten (``RunFolder.changed``); None: the same ``DONE``."""
    changed = folder.changed()
    if changed == "gone" or (table is not None and not table.exists()):
        return f"its {DONE_FILE} or {METRICS_FILE.as_posix()} went during the sweep (removed by a concurrent re-run?)"
    if changed is not None:
        return (f"its {DONE_FILE} was rewritten during the sweep (evaluated again by a concurrent distgen run?), so its "
                f"{METRICS_FILE.as_posix()} may be another evaluation's than the one the sweep read as finished")
    return None


def _finished_when(this_pass: bool) -> str:
    """How a run left out of the results came to be aggregated (``run_changed``): finished by this pass, or before it."""
    return "finished in this sweep" if this_pass else "finished when the sweep started"


def failure_reason(run_dir: Path) -> str | None:
    """The last error line (``distgen run: error: ...``, shown without ``error:``; ``config error: ...``, ``internal error:
    ...`` kept whole) that the last attempt wrote to a run's ``log.txt`` (after its ``$ command`` line: the log keeps every
    attempt's), or None. A run refused by its config (a model too large for the machine: ``config error: ...``) is
    reported with that line, not as "no error in its log"."""
    try:
        tail = (run_dir / "log.txt").read_text(encoding="utf-8", errors="replace")[-20000:]
    except OSError:
        return None
    lines = tail.splitlines()
    last = max((i for i, line in enumerate(lines) if line.startswith("$ ")), default=-1)
    found = [m.group(1) if m.group(1) is not None else m.group(2) for line in lines[last + 1 :] if (m := _ERROR_LINE.match(line))]
    if not found:  # a plugin's or an older distgen's line
        found = [line.split(": error: ", 1)[1] for line in lines[last + 1 :] if ": error: " in line]
    return found[-1].strip() if found else None


def check_run_folders(
    out: Path, folders: Mapping[str, RunFolder], docs: Mapping[str, Mapping[str, Any]], overrides: Sequence[str],
    adopt: bool = False,
) -> dict[str, dict[str, Any] | None]:
    """``check_run_folder`` of each run's folder under ``out`` (``folders``: ``run_folders`` of the runs), the refusal naming the base overrides ``sweep.yaml`` records
    where they differ from ``overrides`` (``recorded_overrides_hint``). Before any run, and before a finished sweep whose
    lock cannot be taken is read (``finished_sweep_without_lock``): a runner-made folder is checked too, and another
    config's ``distgen run`` folder is refused as another config's, not as not writable. Returns each run's ``data_moved.json``
    record (``check_run_folder``) by slug, for the sweep to write under its lock; the read-only read writes none.

    Runs another runner finished before the sweep recorded their config (``unrecorded_runs``) are refused all at once,
    naming each and the fix that keeps them (``adopt_unrecorded``; not one refusal a run saying to restore a record that
    was never written, or to remove ``DONE``, which runs the run again); with ``adopt`` they are not checked
    (the sweep has recorded this config in them, or reads them as this config's where it cannot write)."""
    unrecorded = unrecorded_runs(folders)
    if unrecorded and not adopt:
        shown = first_of(unrecorded, 6)
        first = out / "runs" / unrecorded[0]
        raise ConfigError(
            f"{out / 'runs'} holds {len(unrecorded)} run(s) another runner finished ({DONE_FILE}) before the sweep recorded "
            f"the config a run ran (experiment.yaml, since 2026-12-07): {shown} (e.g. {first / DONE_FILE} without "
            f"{first / 'experiment.yaml'}); which config they ran cannot be told. If "
            "they ran this sweep's config, run it again with adopt_unrecorded=True (distgen.sweep): it records this config "
            f"in them and reads them as finished. Otherwise remove their {DONE_FILE} to run them again (their results are "
            f"replaced), or sweep into another --out{recorded_overrides_hint(out, overrides)}")
    moved: dict[str, dict[str, Any] | None] = {}
    for slug, folder in folders.items():
        if slug in unrecorded:
            moved[slug] = None
            continue
        try:
            moved[slug] = check_run_folder(folder, docs[slug])
        except ConfigError as exc:
            raise ConfigError(f"{exc}{recorded_overrides_hint(out, overrides)}") from None
    return moved


#: Why a config that is not a file (``run_folder.file_kind``) cannot be swept, as ``check_config_readable_again`` says it.
_NOT_A_CONFIG = {
    "a pipe": " (such as <(cat c.yaml), or /dev/stdin fed by one), which can be read once",
    "a character device": " (such as a terminal, or /dev/null), not a file: a terminal's input can be read once, and "
                          "/dev/null holds no config",
    "a socket": ", not a file a config can be read from",
    "a block device": " (a disk, a partition or a loop device), not a file: it holds no config, and each read would read "
                      "the whole device",
}


def check_config_readable_again(config: str | Path) -> None:
    """Refuse (``ConfigError`` naming it, what kind of file it is, and the fix) a config that is not a file to read again:
    a pipe (``<(cat c.yaml)``, ``/dev/stdin`` fed by one), a character device (a terminal, ``/dev/null``), a socket or a
    block device. The sweep reads its config for its settings and again for each run's document, and each run's
    ``distgen run`` reads it again: a pipe or a terminal gives what it holds once, ``/dev/null`` and a socket give no
    config at all, a block device holds none and would be read whole each time. A preset name, a file (``/dev/stdin``
    redirected from one included) or a path that does not exist (refused by ``load_config``) passes."""
    try:
        mode = Path(config).stat().st_mode
    except (OSError, ValueError):
        return
    kind = file_kind(mode)
    if kind in _NOT_A_CONFIG:
        raise ConfigError(f"sweep: the config {config} is {kind}{_NOT_A_CONFIG[kind]}, but the sweep reads its config again for each run (and "
                          "so does each run's distgen run): save the config to a file and sweep that file (distgen sweep "
                          "c.yaml ...)")


def record_run(run_dir: Path, doc: Mapping[str, Any], metrics: Sequence[str], before: tuple[int, ...] | None = None) -> RunFolder:
    """Finish a run another runner made (it returned 0 and left ``eval/metrics.csv`` but wrote no ``DONE``, or no
    ``experiment.yaml``): its config ``doc`` as ``experiment.yaml`` where there is none (``distgen run`` writes its own) or
    where the run left a stale record of another config as it was (``before``: ``record_stamp`` before the run;
    ``stale_record``), then the sweep's plain ``DONE``, written last, unless the run finished itself (``RunFolder.finished``).
    A record the run wrote (``distgen run``'s, of the config file as it read it) is never replaced. Returns the folder as
    read once finished (``RunFolder.read``; read again after the sweep's ``DONE`` is written): what the pass aggregates."""
    path = run_dir / "experiment.yaml"
    if not path.exists() or (before is not None and record_stamp(run_dir) == before and stale_record(path, doc)):
        # a folder the sweep cannot write: a runner's own DONE stays unrecorded (the next sweep names it and the fix);
        # the DONE the sweep writes is refused below (this write does not raise out of the sweep)
        with contextlib.suppress(OSError):
            save_yaml(dict(doc), path)
    if (folder := RunFolder.read(run_dir)).finished(metrics):  # read again: the run wrote the folder
        return folder
    atomic_write_text(run_dir / DONE_FILE, f"{SWEEP_DONE}\n")
    return RunFolder.read(run_dir)


def run_table_note(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any] | None, slug: str,
                   run_dir: Path) -> str | None:
    """What a finished run's ``eval/metrics.csv`` changed since its evaluation wrote it, read with ``distgen compare``'s check
    (``compare.check_table``: the row fingerprints and recorded means of its ``summary.json``), or None; a row holding
    another label's values is refused (``MismatchedEvaluations``, exit 2), naming the run to redo."""
    from distgen.evaluation.compare import MismatchedEvaluations, check_table

    try:
        return check_table(path, rows, summary, f"run {slug}'s metrics.csv ({path})", "the sweep's summary")
    except MismatchedEvaluations as e:
        raise MismatchedEvaluations(f"sweep: {e}; or remove {run_dir} and run the sweep again to redo that run") from None


def run_summary(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's ``eval/summary.json`` document, or None (absent, unreadable, not an object)."""
    try:
        summary = json.loads((run_dir / "eval" / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def generation_diverged(summary: Mapping[str, Any] | None) -> str | None:
    """The note of a run's ``eval/summary.json`` saying that its generated values left the range of log-normalised expression
    (``distgen.evaluation.io.generated_range_note``: a sampler that diverged), or None."""
    from distgen.evaluation.io import GENERATED_RANGE

    notes = summary.get("notes") if summary is not None else None
    found = [n for n in notes if isinstance(n, str) and GENERATED_RANGE in n] if isinstance(notes, list) else []
    return "; ".join(found) if found else None


def training_diverged(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``training_diverged`` record of a finished run's ``eval/summary.json`` document (``run_summary``;
    ``distgen.train.trainer.TrainResult``), or None."""
    d = summary.get("training_diverged") if summary is not None else None
    return d if isinstance(d, dict) and {"step", "loss", "first_loss", "lr"} <= d.keys() else None
