"""Where ``distgen predict`` and ``distgen evaluate`` may write: never over a run's own files, never
silently over someone else's.

A folder is a *run folder* of one of three kinds, recognised by the files its command writes:

* ``train`` (``distgen train``): ``config.yaml`` with ``checkpoints/`` or ``manifest.json``;
* ``experiment`` (``distgen run``): ``experiment.yaml``;
* ``sweep`` (``distgen sweep``): ``sweep.yaml``.

Each kind *owns* some files (``OWNED``): they are never written over by another command, whatever
the options. Any other existing file is replaced only when it is a previous output of the same
command (an ``.h5ad`` this layout wrote with the same kind of rows; an evaluation folder, which an
evaluation marks with ``EVALUATION_MARK`` before its first file, so one killed before its ``summary.json``
is still recognised), or with ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from distgen.errors import OutputPathError
from distgen.evaluation.report import EVALUATION_MARK, mark_evaluation

#: Paths (relative to the run folder; a trailing "/" owns the whole sub-folder) each kind of run folder owns.
OWNED: dict[str, tuple[str, ...]] = {
    "train": ("config.yaml", "manifest.json", "split.json", "info.json", "data_record.json", "data_record.safetensors",
              "embedding_tables.json", "metrics.csv", ".distgen.lock", "checkpoints/", "tensorboard/"),
    "experiment": ("experiment.yaml", "split.json", "pred.h5ad", "real.h5ad", "fit.json", "timings.json", "DONE", "log.txt", ".distgen.lock",
                   "eval/", "train/"),
    "sweep": ("sweep.yaml", "results.csv", "summary.md", "summary.json", "summary.png", ".distgen.lock", "runs/"),
}
#: Every file ``distgen evaluate`` (any profile) and ``distgen run``'s ``eval/`` write into an evaluation folder: the
#: tables, the summaries, the plots (``distgen.evaluation.report.plots``), the page (``distgen.pipeline.pages.PAGE``)
#: and the mark (``EVALUATION_MARK``, written before any of them).
EVALUATE_OUTPUTS = ("metrics.csv", "calibration.csv", "summary.json", "summary.md", "vcc2026_score.csv",
                    "metrics_per_perturbation.png", "delta_scatter.png", "embedding_overlay.png", "report.html", EVALUATION_MARK)

#: How the per-context tables of ``distgen evaluate --profile P --celltype-col COL`` end: ``{context}_metrics.csv``
#: (and ``{context}_vcc2026_score.csv``), the context as a prefix as cell-eval 0.8.2's ``run --celltype-col`` names its files.
CONTEXT_SUFFIXES = ("_metrics.csv", "_vcc2026_score.csv")


#: Characters a context label may hold that a file name may not on Windows (and ``|``, ``*``, ``?``, ``<``, ``>``, ``"``
#: that a shell reads as its own): ``context_prefix`` writes them percent-encoded, as control characters.
UNSAFE_IN_FILE_NAMES = '\\:*?"<>|'


#: Windows' device names (in upper case): a file whose name up to its first dot, trailing spaces dropped, is one of them in
#: any case (``nul.txt``, ``Com1.tar.gz``, ``conin$.x``) opens the device there, so such a file cannot be written or copied
#: onto Windows. ``CONIN$`` and ``CONOUT$`` are the console's input and output (listed with ``CON`` by Python's
#: ``ntpath.isreserved``).
WINDOWS_DEVICE_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                                  *(f"{d}{i}" for d in ("COM", "LPT") for i in (*range(10), "\u00b9", "\u00b2", "\u00b3"))})


def windows_device(name: str) -> bool:
    """Whether Windows reads the file name ``name`` as a device (``WINDOWS_DEVICE_NAMES``): ``CON.x`` and ``nul .1`` are,
    ``CON_metrics.csv`` and ``console.x`` are not."""
    return name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_DEVICE_NAMES


def context_prefix(context: str) -> str:
    """The file-name prefix of ``context``'s tables: cell-eval 0.8.2's (``/`` becomes ``-``, as in ``HepG2-C3A``), with
    each of ``UNSAFE_IN_FILE_NAMES`` and each control character (Unicode category Cc: not a no-break or other space,
    nor a format character, which every system writes as is) written as ``%XX`` (its UTF-8 bytes in hex:
    ``B cells|107`` -> ``B cells%7C107``), so that the file can be written, copied and typed on every system. A label
    without them keeps cell-eval's name. Two labels that still meet in one name (``a|b`` and ``a%7Cb``, ``a/b`` and
    ``a-b``, ``T`` and ``t``) are refused before scoring (``profile_eval``); the label itself is the ``context`` column
    of the file and the key of ``summary.json``'s ``per_context``.

    A label starting with a dot has that dot written ``%2E`` (``.x`` -> ``%2Ex_metrics.csv``): ``.x_metrics.csv`` is a
    hidden file (``ls`` and the file browsers leave it out), and ``._metrics.csv`` (the label ``.``) is what macOS takes for
    the AppleDouble companion of ``metrics.csv``. A label whose text up to its first dot is a Windows device name
    (``CON.x``, ``nul .1``, ``CONIN$.x``: ``windows_device``) has that dot written ``%2E`` (``CON%2Ex_metrics.csv``):
    Windows would open the device for ``CON.x_metrics.csv``. ``CON`` alone keeps its name (``CON_metrics.csv`` is no
    device), and a label ending in a space or a dot is never a file name's end (the suffix follows), so both keep
    cell-eval's name. The name is not decoded back: the label is read from the file's ``context`` column and from
    ``summary.json``, which lists each context's files."""
    prefix = "".join("".join(f"%{b:02X}" for b in ch.encode()) if ch in UNSAFE_IN_FILE_NAMES or unicodedata.category(ch) == "Cc"
                     else ch for ch in context.replace("/", "-"))
    if prefix.startswith("."):
        prefix = "%2E" + prefix[1:]
    return prefix.replace(".", "%2E", 1) if windows_device(prefix + CONTEXT_SUFFIXES[0]) else prefix


#: Unicode's default-ignorable code points, inclusive ranges: zero-width spaces and joiners, the soft hyphen, direction
#: marks, variation selectors, fillers, tags. A Linux case-insensitive (casefold) folder drops them as it folds a name
#: (``fs/unicode/mkutf8data.c``: ``ignore_init``). Python's ``unicodedata`` has no such property, so the ranges are copied
#: from the ``Default_Ignorable_Code_Point`` lines of Unicode 14.0.0's ``DerivedCoreProperties.txt`` (the Unicode of
#: Python 3.11's ``unicodedata``), adjacent ranges merged; ``tests/pipeline/test_default_ignorable.py`` derives the
#: property from the running Python's ``unicodedata`` by the file's own rule and compares.
DEFAULT_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                     (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
                     (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


def _visible(name: str) -> str:
    """``name`` without its default-ignorable code points (``DEFAULT_IGNORABLE``)."""
    return "".join(ch for ch in name if not any(lo <= ord(ch) <= hi for lo, hi in DEFAULT_IGNORABLE))


def file_name_key(name: str) -> str:
    """What two file names share when some file system stores them as one file: ``name`` in one Unicode form (NFD), its
    case folded fully (``str.casefold``: ``T`` -> ``t``, ``\u00df`` -> ``ss``), its default-ignorable code points dropped
    (``DEFAULT_IGNORABLE``). macOS' file systems compare names case-blind and in one Unicode form (``\u00c9`` and ``E`` + a
    combining accent are one file), Windows' case-blind, and Linux's case-insensitive (casefold) folders fold case fully,
    as Unicode's CaseFolding does (``stra\u00dfe`` and ``STRASSE`` are one file there, two on Windows), ignoring those
    invisible characters (``T`` + a zero-width joiner and ``t`` are one file there)."""
    return _visible(unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold()))


def _upcase(ch: str) -> str:
    """``ch`` as Windows upper-cases a name, letter by letter: a lower-case letter with a one-letter upper case gets it
    (``\u03c2`` -> ``\u03a3``), any other character (``\u00df``, whose upper case is ``SS``; the title-case ``\u01c5``)
    stays."""
    upper = ch.upper()
    return upper if len(upper) == 1 and unicodedata.category(ch) == "Ll" else ch


def _case_twins(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ in case alone as Windows and macOS compare names, letter by letter (``_upcase``):
    ``\u03c3``, ``\u03c2`` and ``\u03a3`` are twins; ``\u00df`` and ``\u1e9e``, ``\u01c5`` and ``\u01c4`` are not."""
    return len(a) == len(b) and all(_upcase(x) == _upcase(y) for x, y in zip(a, b))


def one_file_reason(a: str, b: str) -> str:
    """Why the file names ``a`` and ``b`` (equal by ``file_name_key``) are one file, in words for a message: the file
    systems named are those that join them (a pair that only a full case fold joins, ``stra\u00dfe`` and ``STRA\u1e9eE``,
    is two files on Windows)."""
    if a == b:
        return "the same name once encoded"
    if _case_twins(a, b):
        return "names that differ only in case are one file on a case-insensitive file system, macOS' and Windows'"
    nfd_a, nfd_b = unicodedata.normalize("NFD", a), unicodedata.normalize("NFD", b)
    if nfd_a == nfd_b or _case_twins(nfd_a, nfd_b):
        return (f"names that differ only in Unicode form (a letter with its accent as one character or as two){'' if nfd_a == nfd_b else ', and case,'} "
                "are one file on macOS, whose file systems compare names in one Unicode form and case-blind")
    visible_a, visible_b = _visible(a), _visible(b)
    if (visible_a, visible_b) != (a, b):
        return (f"names that differ in invisible characters (Unicode's default-ignorable ones: zero-width spaces and joiners, soft "
                f"hyphens, direction marks, variation selectors){', and in case,' if visible_a != visible_b else ''} are one file "
                "in a Linux case-insensitive (casefold) folder, which ignores those characters as it folds case")
    return ("names equal once case is folded fully (\u00df as ss, as Unicode's CaseFolding folds it) are one file in a Linux "
            "case-insensitive (casefold) folder, which folds case fully (Windows keeps them apart)")


#: The longest file name (bytes) an output may have: most file systems' 255, less the 14 of ``distgen.atomic``'s hidden
#: temporary name (``.{name}.xxxxxxxx.tmp``) that it is written under first.
MAX_FILE_NAME = 255 - 14


def long_context_names(contexts: Iterable[str]) -> list[str]:
    """The contexts whose longest table name (``{context_prefix}_vcc2026_score.csv``, UTF-8) is over ``MAX_FILE_NAME`` bytes."""
    longest = max(CONTEXT_SUFFIXES, key=len)
    return [c for c in contexts if len((context_prefix(c) + longest).encode()) > MAX_FILE_NAME]


def context_files(out: str | Path) -> list[str]:
    """The per-context tables an earlier evaluation in ``out`` lists in its ``summary.json`` (``per_context.*.files``).

    Only plain file names that end in a ``CONTEXT_SUFFIXES`` suffix are returned: a summary never makes a rerun
    remove any other file.
    """
    try:
        doc = json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    per = doc.get("per_context") if isinstance(doc, dict) else None
    if not isinstance(per, dict):
        return []
    names = [f for v in per.values() if isinstance(v, dict) for f in (v.get("files") or []) if isinstance(f, str)]
    return [f for f in names if f.endswith(CONTEXT_SUFFIXES) and Path(f).name == f and f not in (".", "..")]


def run_kind(folder: Path) -> str | None:
    """``"train"``, ``"experiment"``, ``"sweep"`` or None: which command's run folder ``folder`` is."""
    if (folder / "experiment.yaml").is_file():
        return "experiment"
    if (folder / "sweep.yaml").is_file():
        return "sweep"
    if (folder / "config.yaml").is_file() and ((folder / "checkpoints").is_dir() or (folder / "manifest.json").is_file()):
        return "train"
    return None


def owner(path: str | Path) -> tuple[Path, str, str] | None:
    """(run folder, its kind, ``path`` relative to it) when the nearest run folder above ``path`` owns it, else None.

    The nearest decides: ``EXP/train/pred.h5ad`` lies in the training run ``EXP/train`` (which does
    not own it), not in the experiment ``EXP`` (which owns ``train/``).
    """
    path = Path(path).absolute()
    for folder in path.parents:
        kind = run_kind(folder)
        if kind is None:
            continue
        rel = path.relative_to(folder).as_posix()
        if any(rel == o or (o.endswith("/") and rel.startswith(o)) for o in OWNED[kind]):
            return folder, kind, rel
        return None
    return None


def _refuse_owned(path: Path, command: str) -> None:
    found = owner(path)
    if found is not None:
        folder, kind, rel = found
        raise OutputPathError(f"{str(path)!r} is {rel}, a file of the {kind} run folder {str(folder)!r}; "
                              f"distgen {command} never writes over a run's own files: choose another path")


def check_output_file(path: str | Path, command: str, kind: str, overwrite: bool = False) -> None:
    """Refuse writing the ``kind`` (``pred``/``real``) ``.h5ad`` ``path`` over a run's file or someone else's file.

    A previous output of the same kind is replaced; another existing file needs ``overwrite``.
    """
    path = Path(path)
    _refuse_owned(path, command)
    if path.is_dir():
        raise OutputPathError(f"{str(path)!r} is a folder, but distgen {command} writes a file there; give a file path such as "
                              f"{str(path / (kind + '.h5ad'))!r}")
    if not path.exists() or overwrite:
        return
    from distgen.data.layout import written_kinds  # anndata's import is paid only when an .h5ad is in the way

    kinds = written_kinds(path)
    if kinds is not None and "predicted" in kinds:  # the chunked writer's row kind (--data, predict_to_disk) for "pred"
        kinds = kinds | {"pred"}
    if kinds is None or kind not in kinds:
        raise OutputPathError(f"{str(path)!r} exists and is not a previous {kind} output of distgen {command}; "
                              "pass --overwrite (overwrite=True in Python) to replace it, or choose another path")


def check_not_inputs(outputs: Sequence[tuple[str, str | Path | None]], inputs: Sequence[tuple[str, str | Path | None]],
                     command: str = "distgen predict") -> None:
    """Refuse an output that is one of the command's input files (``OutputPathError``), with or without ``--overwrite``.

    ``distgen predict RUN --data new.h5ad --out new.h5ad`` was refused as "not a previous prediction ... pass --overwrite",
    and with ``--overwrite`` replaced the user's data file by its own prediction (the training file alike, as ``--real``).
    ``outputs`` and ``inputs``: ``(option, path)`` pairs; ``None`` paths are skipped."""
    from distgen.atomic import same_file

    read = [(name, p) for name, p in inputs if p is not None and Path(p).exists()]
    for name, p in outputs:
        if p is None:
            continue
        hit = next(((n, q) for n, q in read if same_file(p, q)), None)  # a symlink, hard link or another case of the name
        if hit is not None:
            flag = "overwrite=True" if command.startswith("distgen.") else "--overwrite"  # distgen.predict: the keyword
            raise OutputPathError(f"{name} {str(p)!r} is {hit[0]} {str(hit[1])!r}, which {command} reads: writing there "
                                  f"would replace that data with the prediction ({flag} included); give another path")


def check_distinct(paths: Sequence[str | Path | None], what: Sequence[str]) -> None:
    """Refuse two outputs of one command at the same path (the second would replace the first)."""
    from distgen.atomic import same_file

    seen: list[tuple[str | Path, str]] = []
    for p, name in zip(paths, what):
        if p is None:
            continue
        hit = next((n for q, n in seen if same_file(p, q)), None)
        if hit is not None:
            raise OutputPathError(f"{hit} and {name} are the same file {str(p)!r}; give them different paths")
        seen.append((p, name))


@contextlib.contextmanager
def output_folder(out: str | Path | None) -> Iterator[None]:
    """Make ``out`` (and its missing parents) now, so a path that cannot be a folder fails before any compute; if the
    block then fails before writing anything there, remove the folders it made, so that a wrong input path (a typo in
    ``--real``) leaves no empty evaluation folder behind. ``None``: nothing to make."""
    if out is None:
        yield
        return
    out = Path(out)
    made = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        made.append(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in made:  # deepest first; a folder that holds anything stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def check_output_folder(out: str | Path, command: str, overwrite: bool = False, names: Sequence[str] = EVALUATE_OUTPUTS) -> None:
    """Refuse writing the files ``names`` into ``out`` when a run owns it or them, or over files of something else.

    A folder holding a previous evaluation (marked ``EVALUATION_MARK``, finished or interrupted, or with a
    ``summary.json`` that has ``metrics``) is written again; other existing files of those names need ``overwrite``.
    """
    out = Path(out)
    kind = run_kind(out)
    if kind is not None:
        raise OutputPathError(f"{str(out)!r} is a {kind} run folder; distgen {command} never writes into a run's own files "
                              f"(its {', '.join(n for n in names if (out / n).exists()) or 'files'}): choose another --out, "
                              f"e.g. {str(out / command)!r}")
    for name in names:
        _refuse_owned(out / name, command)
    if overwrite or out.is_file():
        return  # a file where the folder should be is reported where the folder is made
    existing = [n for n in names if (out / n).exists()]
    if existing and not _previous_evaluation(out):
        raise OutputPathError(f"{str(out)!r} already holds {', '.join(existing)}, not written by distgen {command}; "
                              "pass --overwrite to replace them, or choose another --out")


def clear_evaluation(out: str | Path, names: Sequence[str] = EVALUATE_OUTPUTS) -> list[str]:
    """Remove the files of an earlier evaluation from ``out`` before a new one is written there; returns their names.

    Only the names an evaluation writes (``EVALUATE_OUTPUTS``, and the per-context tables the earlier
    ``summary.json`` lists: ``context_files``) go, so a rerun never leaves an earlier run's page, plots or
    tables beside the new ones (a stale, mixed report); any other file stays. Call it after
    ``check_output_folder`` allowed writing there, once the new results are computed. The folder is then marked
    as an evaluation's (``EVALUATION_MARK``) before any new file is written: a rerun after a kill mid-way needs
    no ``--overwrite``.
    """
    out = Path(out)
    removed = []
    for name in dict.fromkeys([*context_files(out), *names]):
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(name)
    out.mkdir(parents=True, exist_ok=True)
    mark_evaluation(out)
    return removed


def _previous_evaluation(out: Path) -> bool:
    if (out / EVALUATION_MARK).is_file():
        return True
    try:
        doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("metrics"), dict)
