"""The cell-eval file layout's vocabulary: column and label names, what a pair read found, canonical labels, which
stored sparse positions are readable.

Importable without AnnData (``distgen.data.layout`` reads and writes the files with anndata;
``distgen.evaluation.h5pair`` reads well-formed pairs with h5py alone): both take these from here.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distgen.errors import InputDataError, UsageError
from distgen.types.cells import COMBO, atoms_of, canonical
from distgen.wording import counted, first_of

#: Column and label names written (cell-eval's defaults). The only place these names are defined.
PERT_COL = "target"  #: cell-eval2's default ``--pert-col`` (distgen wrote ``target_gene``, cell-eval 0.8's, before)
CONTROL = "non-targeting"  #: cell-eval2's default ``--control`` (and cell-eval's ``--control-pert``)
CELLTYPE_COL = "celltype"  #: cell-eval's default ``--celltype-col``
BATCH_COL = "batch"  #: the batch (donor, plate...) of each cell, written when the data has several (cell-eval ignores it)
KIND_COL = "distgen_kind"  #: ``pred`` / ``real`` / ``control``: which rows a model generated
#: ``uns["distgen"]`` key of the combination delimiter of a file's labels, when it is not ``+`` (the data's
#: ``PerturbationSchema.combo_delimiter``): readers split combinations on it too.
DELIMITER_KEY = "combo_delimiter"
#: ``uns["distgen"]`` key of the data's ``PerturbationSchema.perturbation_type`` (``genetic`` or ``chemical``), recorded by
#: the files ``distgen predict`` writes: a truth recording ``chemical`` has no target genes to exclude under cell-eval2's
#: profiles, as ``--no-target-genes`` declares for files that record nothing.
PERTURBATION_TYPE_KEY = "perturbation_type"
#: The values ``uns["distgen"]["perturbation_type"]`` may hold (``PerturbationSchema.perturbation_type``'s).
PERTURBATION_TYPES = ("genetic", "chemical")

#: Conventions tried, in order, when reading a file whose column or control label is not given.
PERT_COLS = (PERT_COL, "target_gene", "condition", "perturbation", "gene", "guide_target")
#: Value scales recorded in ``uns["distgen"]["scale"]``.
SCALES = ("lognorm", "counts")
CONTROL_LABELS = (CONTROL, "control", "ctrl", "NT", "non_targeting", "DMSO")
#: Strings that mean "no value" in exported tables (compared after strip + lower-case): a label that is one
#: of them is missing, never a perturbation or a control (``distgen.data.conditions.missing_mask``).
MISSING_STRINGS = frozenset({"", "nan", "none", "null", "na", "<na>", "n/a"})


@dataclass
class LayoutInfo:
    """What ``read_pair`` found: the perturbation column, control label and cell-type column used."""

    pert_col: str
    control: str
    celltype_col: str | None = None
    notes: list[str] = field(default_factory=list)
    #: The truth's conditions in the order its perturbation column lists them (its categories, or natural
    #: sort for a string column, as anndata writes them): the order cell-eval2 visits groups in.
    condition_order: tuple[str, ...] = ()
    #: The scale each file records in ``uns["distgen"]["scale"]`` (files that record none are absent).
    scales: dict[str, str] = field(default_factory=dict)
    #: The kind of rows each file records in ``uns["distgen"]["kind"]`` (``pred``: a model's predictions written by
    #: this layout); files that record none are absent.
    kinds: dict[str, str] = field(default_factory=dict)
    #: The logarithm base each file's scanpy record gives (``uns["log1p"]["base"]``; ``math.e`` for ``None``, scanpy's
    #: natural log); files without the record are absent.
    log_bases: dict[str, float] = field(default_factory=dict)
    #: What made the prediction file, as it records it (``uns["distgen"][PROVENANCE_KEY]``: seed, checkpoint...); empty when it records none.
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The perturbation type each file records in ``uns["distgen"]["perturbation_type"]`` (``genetic`` or ``chemical``:
    #: written by ``distgen predict`` from the run's schema); files that record none are absent.
    perturbation_types: dict[str, str] = field(default_factory=dict)
    #: What the evaluation's file checks checked (``distgen.evaluation.normalization.FileChecks``, set by
    #: ``pipeline.profile_eval.read_files``): the loaders compare what it did not, reading it rather than its rule.
    checks: Any = None


def looks_like_celltype(column: str) -> bool:
    """Whether an obs column's name is a spelling of a cell-type / cell-line column (``cell_type``, ``CellType``, ``cell_line``)."""
    return "".join(ch for ch in column.lower() if ch.isalpha()) in ("celltype", "cellline")


#: How the note of ``pooled_contexts_note`` begins (``distgen evaluate`` warns it).
POOLED_NOTE = "contexts pooled"


#: ``obs`` columns that usually hold a cell's dose (sci-Plex ``dose``, GEARS ``dose_val``): ``distgen.data.layout``'s
#: ``split_doses`` reads them (and the fast pair reader leaves a pair with one to it).
DOSE_COLUMNS = ("dose", "dose_val", "dose_value")


def pooled_contexts_note(columns: Iterable[str], values: Callable[[str], Iterable[str] | None]) -> list[str]:
    """A note when contexts are pooled although the truth has a column named like a cell type with 2+ values.

    ``columns``: the truth's obs column names; ``values(column)``: that column's values as strings, or None
    for a column the reader cannot decode (named without its values). Only columns named like a cell type
    (``looks_like_celltype``) are read. Both readers of a pair feed it (``distgen.data.layout.read_pair``
    from AnnData, ``distgen.evaluation.h5pair.read_pair_fast`` from h5py) when no cell-type column is used,
    for the default evaluation and ``--profile`` alike. Returns ``[]`` or one note.
    """
    found: dict[str, list[str] | None] = {}
    for c in columns:
        if looks_like_celltype(c):
            got = values(c)
            found[c] = None if got is None else sorted(set(map(str, got)))
    found = {c: v for c, v in found.items() if v is None or len(v) > 1}
    if not found:
        return []
    said = "; ".join(repr(c) if v is None else f"{c!r} ({counted(len(v), 'value')}: {first_of(v, 4, render=repr, enclosed=True)})" for c, v in found.items())
    return [f"{POOLED_NOTE}: the truth has cell-type column(s) {said}, not used as contexts, so every condition is scored over "
            f"all its cells; pass --celltype-col {next(iter(found))} (celltype_col=...) to score each context on its own, "
            "against its own control cells"]


def canonical_condition(label: str, control: str, delimiters: Sequence[str] = (), controls: Iterable[str] = CONTROL_LABELS) -> str:
    """A file's label as a canonical condition: atoms split on ``+`` (and on ``delimiters``, the combination delimiters
    the files record: ``KLF1_MAP2K6`` with ``_``), control tokens dropped from combinations (``A+ctrl`` is ``A``), sorted.

    Only ``control`` itself is the control as a whole label: another usual control label (``DMSO`` in a panel whose
    control is ``untreated``) is a perturbation of its own, as cell-eval scores it (it was read as control cells, which
    moved its cells into every delta's control mean and left it unscored). ``controls``: the other words dropped from a
    combination, besides ``control`` itself; the usual control labels when the control was guessed (GEARS' ``A+ctrl``
    in a file whose control reads ``non-targeting``), ``()`` when it was named (``--control``, or the file's own record,
    ``uns["distgen"]["control"]``): then every other word is an atom, ``DMSO+drugA`` a combination of two
    (``control_words``)."""
    skip = {control.strip(), *controls}
    text = str(label)
    if text.strip() == control.strip():
        return control
    extra = [d for d in delimiters if d and d != COMBO]
    parts = re.split("|".join(map(re.escape, [COMBO, *extra])), text) if extra else text.split(COMBO)
    atoms = [a.strip() for a in parts if a.strip()]
    return canonical(atoms if len(atoms) == 1 else (a for a in atoms if a not in skip), control)


def spacing_twins(labels: Iterable[str], delimiters: Sequence[str] = ()) -> list[list[str]]:
    """Groups of 2+ distinct ``labels`` that differ only by whitespace around the label or its atoms (``A`` and ``A ``,
    ``A+B`` and ``A + B``), or by an empty atom (``A+``): ``canonical_condition`` reads each group as one condition, where
    cell-eval (which compares labels as written) scores two. Each group sorted; ``[]`` when none."""
    extra = [d for d in delimiters if d and d != COMBO]
    pattern = "|".join(map(re.escape, [COMBO, *extra]))
    groups: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for label in set(map(str, labels)):
        parts = re.split(f"({pattern})", label)  # atom, delimiter, atom...: A+B and A_B stay apart
        kept = [(parts[i - 1] if i else "", parts[i].strip()) for i in range(0, len(parts), 2) if parts[i].strip()]
        key = tuple((d if j else "", a) for j, (d, a) in enumerate(kept))
        groups.setdefault(key, set()).add(label)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


#: Separators that combination labels are written with in the field besides ``+`` (``A_B``, ``A|B``), checked against the
#: delimiter a file records or a schema declares (``distgen.data.conditions.label_warnings`` at loading,
#: ``foreign_combinations`` at evaluation).
OTHER_DELIMITERS = ("_", ";", ",", "|", "&", "/", ":", "-")


def merged_labels(labels: Iterable[str], control: str, delimiters: Sequence[str] = (),
                  controls: Iterable[str] = CONTROL_LABELS) -> dict[str, list[str]]:
    """``{condition: labels}`` for each condition that ``canonical_condition`` reads from 2+ distinct ``labels`` written
    otherwise than by spacing (``spacing_twins``): atoms in another order (``A+B``, ``B+A``), a repeated atom (``A+A`` and
    ``A``), a control atom (GEARS ``A+ctrl`` and ``A``). cell-eval scores each label as a perturbation of its own."""
    controls = tuple(controls)
    groups: dict[str, set[str]] = {}
    for label in set(map(str, labels)):
        groups.setdefault(canonical_condition(label, control, delimiters, controls), set()).add(label)
    return {c: sorted(g) for c, g in sorted(groups.items()) if len(g) > 1}


def foreign_combinations(labels: Iterable[str], genes: Iterable[str], control: str,
                         delimiters: Sequence[str] = ()) -> dict[str, list[str]]:
    """``{separator: labels}``: labels without ``+`` that are not a gene but whose parts, split on a separator of
    ``OTHER_DELIMITERS`` the files do not record (``delimiters``), are each a measured gene or another one-atom label of the
    file (``A_B`` beside ``A`` and ``B``): read as one perturbation each, they look like combinations."""
    labels = sorted({str(v) for v in labels} - {control})
    gene_set = set(map(str, genes))
    known = gene_set | {v.strip() for v in labels if not any(d in v for d in (COMBO, *OTHER_DELIMITERS))}
    found: dict[str, list[str]] = {}
    for label in labels:
        if COMBO in label or label in gene_set:
            continue
        for d in OTHER_DELIMITERS:
            parts = [p.strip() for p in label.split(d)]
            if d not in delimiters and len(parts) > 1 and all(p in known for p in parts):
                found.setdefault(d, []).append(label)
                break
    return found


def crossed_labels(sizes: Mapping[str, Mapping[str, int]], merged: Mapping[str, Mapping[str, Any]], control: str,
                   delimiters: Sequence[str], controls: Sequence[str]) -> list[tuple[str, str]]:
    """``[(pred label, real label)]`` of the combinations each of the two files writes one way, the two ways apart (``B+A``
    predicted from a file by ``distgen predict --data``, ``A+B`` in a truth written sorted): one condition to distgen, none
    paired by cell-eval. A condition a file writes several ways is named by ``merged_note`` instead."""
    skip = {control.strip(), *controls}
    split = "|".join(map(re.escape, [COMBO, *(d for d in delimiters if d and d != COMBO)]))

    def order(label: str) -> list[str]:  # the atoms as written, a control or repeated atom aside (spacing is not order)
        return list(dict.fromkeys(a.strip() for a in re.split(split, label) if a.strip() and a.strip() not in skip))

    return sorted((p, r) for p, r in _paired_labels(sizes, merged, control, delimiters, controls)
                  if COMBO in canonical_condition(r, control, delimiters, controls) and order(p) != order(r))


def rewritten_labels(sizes: Mapping[str, Mapping[str, int]], merged: Mapping[str, Mapping[str, Any]], control: str,
                     delimiters: Sequence[str], controls: Sequence[str]) -> list[tuple[str, str]]:
    """``[(pred label, real label)]`` of the labels each of the two files writes one way, the two ways apart otherwise than
    by the order of atoms (that is ``crossed_labels``'): spacing (``'A '`` against ``'A'``, ``'A + B'`` against ``'A+B'``),
    an empty, repeated or control atom (``'A+'``, ``'A+A'``, ``'A+ctrl'`` against ``'A'``), another recorded delimiter.
    One condition to distgen, none paired by cell-eval."""
    crossed = set(crossed_labels(sizes, merged, control, delimiters, controls))
    return sorted(pr for pr in _paired_labels(sizes, merged, control, delimiters, controls) if pr not in crossed)


def _paired_labels(sizes: Mapping[str, Mapping[str, int]], merged: Mapping[str, Mapping[str, Any]], control: str,
                   delimiters: Sequence[str], controls: Sequence[str]) -> list[tuple[str, str]]:
    """``[(pred label, real label)]``: one condition (``canonical_condition``) written otherwise by the prediction than by
    the truth, each file writing it one way (a condition a file writes several ways is ``merged_note``'s)."""
    pred, real = sizes.get("pred"), sizes.get("real")
    if pred is None or real is None:
        return []
    taken = {c for n in ("pred", "real") for c in merged.get(n, {})}
    ours = {canonical_condition(k, control, delimiters, controls): k for k in map(str, pred)}
    out = []
    for label in map(str, real):
        c = canonical_condition(label, control, delimiters, controls)
        if c in ours and c not in taken and ours[c] != label:
            out.append((ours[c], label))
    return out


def control_atom_labels(labels: Iterable[str], control: str, delimiters: Sequence[str] = (),
                        controls: Iterable[str] = CONTROL_LABELS) -> dict[str, str]:
    """``{label: condition}`` for ``labels`` that ``canonical_condition`` reads without a control atom written beside a
    perturbation (GEARS ``A+ctrl`` as ``A``)."""
    controls = tuple(controls)
    skip = {control.strip(), *controls}
    extra = [d for d in delimiters if d and d != COMBO]
    out = {}
    for label in sorted(set(map(str, labels))):
        parts = [a.strip() for a in re.split("|".join(map(re.escape, [COMBO, *extra])), label) if a.strip()]
        if label.strip() != control.strip() and len(parts) > 1 and any(p in skip for p in parts) and not all(p in skip for p in parts):
            out[label] = canonical_condition(label, control, delimiters, controls)
    return out


def spacing_message(groups: Sequence[Sequence[str]], counts: Callable[[str], int], column: str, name: str) -> str:
    """Why a file whose labels ``spacing_twins`` groups is refused, with each spelling's cell count and the fix."""
    said = first_of(groups, 3, "; ", lambda g: " and ".join(f"{lab!r} ({counts(lab)} cells)" for lab in g), noun="group")
    return (f"the {name} file's obs[{column!r}] holds labels that differ only by surrounding spaces: {said}. distgen "
            "would read each group as one condition (trimmed), cell-eval as different conditions, so the cells of two "
            f"conditions would be pooled without a word. Rename one spelling in obs (if they are one condition: "
            f"adata.obs[{column!r}] = adata.obs[{column!r}].astype(str).str.strip()) and write the file again")


def form_key(label: str) -> str:
    """``label`` as it prints: one Unicode form (NFKC) and without invisible format characters (Unicode category Cf: a
    zero-width space or joiner copied from a web page, a byte-order mark from a spreadsheet's export, a soft hyphen)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", label) if unicodedata.category(ch) != "Cf")


#: The fix ``form_message`` and ``form_hint`` give: a label as ``form_key`` reads it, as Python code.
_FORM_FIX = "''.join(c for c in unicodedata.normalize('NFKC', {x}) if unicodedata.category(c) != 'Cf')"


def form_twins(labels: Iterable[str]) -> list[list[str]]:
    """Groups of 2+ distinct ``labels`` that print alike (``form_key``): ``é`` as one character (NFC, what most tools
    write) or as ``e`` plus a combining accent (NFD, macOS file names and some exports), ``µ`` (micro sign) and ``μ``,
    ``KLF1`` and ``KLF1`` with a zero-width space. They look identical in every table, file and page but compare as
    different labels, so a condition (context, batch) would be split in two without a word. The Unicode form is compared
    under NFKC, as the evaluation's spelling checks compare it (``distgen.evaluation.io``). Each group sorted; ``[]``
    when none."""
    groups: dict[str, set[str]] = {}
    for label in set(map(str, labels)):
        groups.setdefault(form_key(label), set()).add(label)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def form_message(groups: Sequence[Sequence[str]], where: str, what: str, column: str) -> str:
    """Why labels that ``form_twins`` groups are refused: each group as ``ascii()`` writes it (their reprs look alike), what
    they would have been read as, and the fix for obs column ``column``."""
    said = first_of(groups, 3, "; ", lambda g: " and ".join(ascii(lab) for lab in g), noun="group")
    return (f"{where} holds labels that differ only in their Unicode form or in invisible characters: {said} (shown "
            f"with escapes: they print alike, or nearly, for compatibility characters such as the micro sign or a superscript "
            f"'\u00b2' for '2'). They would be read as different {what} that tables, files and pages hardly tell "
            f"apart. Write each one way (if they are one label: import unicodedata; adata.obs[{column!r}] = "
            f"adata.obs[{column!r}].astype(str).map(lambda s: {_FORM_FIX.format(x='s')})) and load the file again")


def blank_names(names: Iterable[str]) -> list[int]:
    """Positions of ``names`` that print as nothing: empty, whitespace only, or invisible format characters only
    (``form_key`` of them, stripped, is empty: ``""``, ``" "``, a zero-width space, an ideographic space)."""
    # an ASCII name is its own form_key (NFKC keeps ASCII, which holds no format character): stripped as it is, no
    # per-character walk (a 1,267-gene file took ~1.2 ms a side of every evaluation's pair read)
    return [i for i, n in enumerate(map(str, names)) if not (n.strip() if n.isascii() else form_key(n).strip())]


def blank_message(names: Sequence[str], positions: Sequence[int], where: str) -> str:
    """Why ``where``'s gene names at ``positions`` (``blank_names``) are refused, each escaped, and the fix."""
    said = first_of(positions, 5, render=lambda i: f"{i} ({str(names[i])!a})", enclosed=True)
    shown = list(positions[:20])
    one = len(positions) == 1
    return (f"{where} has {counted(len(positions), 'gene name')} that {'is' if one else 'are'} empty or blank "
            f"(column{'' if one else 's'} {said}): a gene the files, tables "
            "and pages cannot name, which a file written and read again keeps as a nameless column. Name them "
            f"(adata.var_names = [...]) or drop those columns (adata = adata[:, ~np.isin(np.arange(adata.n_vars), {shown})].copy()"
            f"{', with every position listed' if len(positions) > 20 else ''}) and load it again")


def form_pairs(unknown: Iterable[str], known: Iterable[str]) -> list[tuple[str, str]]:
    """``(u, k)`` for each ``u`` of ``unknown`` that is ``k`` of ``known`` written another way that prints alike
    (``form_key``)."""
    first: dict[str, str] = {}
    for k in known:
        first.setdefault(form_key(k), k)
    return [(u, k) for u in unknown if (k := first.get(form_key(u), u)) != u]


def form_hint(pairs: Sequence[tuple[str, str]], where: str) -> str:
    """The fix for labels (``form_pairs``) that are ``where``'s written another way that prints alike: each pair as
    ``ascii()`` writes it (their reprs look alike, so 'unknown X; known: ..., X, ...' said nothing), and how to write them."""
    shown = ", ".join(f"{u!a} is {k!a}" for u, k in pairs[:5])
    # the form that writes every label as ``where`` does: NFC or NFD for an accent, NFKC for a compatibility character
    # ('µ', the micro sign, is 'μ' under NFKC only: NFC leaves it as it is, so NFC would not be the form to name)
    form = next((f for f in ("NFC", "NFD", "NFKC", "NFKD") if all(unicodedata.normalize(f, u) == k for u, k in pairs)), None)
    if form is not None:
        how = f"the same text in another Unicode form (they print alike); write them as {where} does (unicodedata.normalize({form!r}, label))"
    elif all(form_key(u) == k for u, k in pairs):
        how = (f"the same text with other invisible characters (they print alike); write them as {where} does (without them: "
               f"{_FORM_FIX.format(x='label')})")
    else:  # labels in several forms, or ``where`` itself writes invisible characters: no one call writes them all
        how = f"the same text in other Unicode forms or with other invisible characters (they print alike); write each as {where} does"
    return f"labels are compared code point by code point: {shown} in {where}, {how}"


def control_words(named: bool) -> tuple[str, ...]:
    """The words besides the control dropped from a combination label (``canonical_condition``'s ``controls``): none when
    the control was named (by the user, or recorded by the file that distgen wrote), the usual control labels when it was
    guessed."""
    return () if named else CONTROL_LABELS


def file_label(condition: str, control: str, delimiter: str = COMBO) -> str:
    """A canonical condition (``A+B``) as written to a file of data whose combinations are joined by ``delimiter``
    (``A_B``): the user's own label, which ``canonical_condition`` reads back with that delimiter."""
    return condition if delimiter == COMBO or condition == control else delimiter.join(atoms_of(condition, control))


#: ``uns["distgen"][PROVENANCE_KEY]``: what made a prediction (seed, run, checkpoint, weights, options), so a file says how to
#: make it again (``distgen.pipeline.predict``).
PROVENANCE_KEY = "provenance"
#: ``uns["distgen"][TRUTH_KEY]``: the fingerprint of the truth a prediction was written with (``write_pair``), in both files.
TRUTH_KEY = "truth"


class MismatchedPair(UsageError, ValueError):
    """A prediction and a truth file that ``write_pair`` wrote with different truths (exit code 2)."""


def pair_marker(pred: str | os.PathLike[str]) -> str:
    """The file beside prediction ``pred`` that ``distgen.data.layout.publish_pair`` writes before renaming a pair into
    place and removes after: ``{"real": the truth's absolute path, "truth": the new pair's fingerprint}``."""
    head, name = os.path.split(os.path.abspath(os.fspath(pred)))
    return os.path.join(head, f".{name}.pairing.json")


def _publishing(pred: object, real: object) -> tuple[str, str] | None:
    """``(fingerprint, marker)`` of a pair whose publishing over ``pred`` and ``real`` (paths) did not finish (its
    ``pair_marker`` is still there, naming ``real``), or None."""
    import json

    if not isinstance(pred, str | os.PathLike) or not isinstance(real, str | os.PathLike):
        return None
    marker = pair_marker(pred)
    try:
        with open(marker, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    same = isinstance(doc, dict) and doc.get("real") == os.path.abspath(os.fspath(real))
    return (str(doc["truth"]), marker) if same and isinstance(doc.get("truth"), str) else None


def check_pair(pred_truth: str | None, real_truth: str | None, pred: object = "pred", real: object = "real") -> None:
    """Refuse a prediction and a truth whose ``write_pair`` records (``uns["distgen"]["truth"]``) differ: the prediction
    was written with another truth (a kill between the two files' renames, or files of two runs mixed up). Files
    without the record (written alone, or by other tools) are not checked, except where ``publish_pair``'s marker
    (``pair_marker``) says a pair was being renamed over these paths and only one of them is the new one: a kill between
    the renames over a pair from before truth fingerprints left the new truth beside the old prediction, which has no
    record to differ."""
    publishing = _publishing(pred, real)
    pending, marker = publishing if publishing is not None else (None, "")
    if pending is not None and (pred_truth == pending) != (real_truth == pending):
        new, old = (real, pred) if real_truth == pending else (pred, real)
        raise MismatchedPair(f"{_label(new)} is from a prediction whose files were being renamed into place when it stopped "
                             f"({marker} is still there), and {_label(old)} is an earlier file: they are not one "
                             "pair; write them again together (distgen predict RUN --out PRED --real REAL, or predict_to_disk "
                             "with real=)")
    if pred_truth is None or real_truth is None or pred_truth == real_truth:
        return
    raise MismatchedPair(f"the prediction {_label(pred)} was written with another truth than {_label(real)} "
                         f"(uns['distgen']['truth'] {pred_truth} vs {real_truth}): they are not one pair (a prediction "
                         "interrupted between its two files, or files of two runs mixed up); write them again together "
                         "(distgen predict RUN --out PRED --real REAL) or pass the truth written with this prediction")


def _label(source: object) -> str:
    return repr(os.fspath(source)) if isinstance(source, str | os.PathLike) else "file"


class NoControlCells(InputDataError):
    """A file of a pair without the control label (``distgen.data.layout.guess_control``): ``side`` (``"pred"``, ``"real"``...), what it
    lacks (``head``) and the fix (``hint``). The reason given is that every evaluation needs control cells; ``because``
    gives the same refusal with another (a profile that reads no predicted control refuses for its reference's rule)."""

    def __init__(self, side: str, head: str, hint: str, reason: str = "every evaluation needs control cells") -> None:
        super().__init__(f"{head}; {reason}{hint}")
        self.side, self.head, self.hint, self.reason = side, head, hint, reason

    def because(self, reason: str) -> NoControlCells:
        """This refusal with ``reason`` in place of its own."""
        return NoControlCells(self.side, self.head, self.hint, reason)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (a worker's error) with its parts, not its message alone
        return (NoControlCells, (self.side, self.head, self.hint, self.reason))


def position_type_problem(dtype: np.dtype) -> str | None:
    """Why sparse positions stored as ``dtype`` are unreadable (``sparse_position_problem``'s first words), judged on the
    type alone (no value read); None for an integer type."""
    if dtype.kind in ("i", "u"):
        return None
    return f"are stored as {dtype} values, not integers"


def sparse_position_problem(positions: np.ndarray) -> str | None:
    """Why a sparse matrix's stored positions (its ``indices`` or ``indptr``) are unreadable, worded to follow "its
    indices"; None for integer positions. Positions stored as floats are refused, whole or not: scipy truncates them in
    ``check_format`` (1.5 reads as 1, -0.5 as 0) and refuses them when densifying ("unsupported data types in input"), and
    anndata never writes them; so are positions stored as bool (0 and 1 only: scipy sums the values of every column past
    0 into column 1). Judged on the stored values without a cast: casting a NaN warns ("invalid value encountered
    in cast"), an error under ``python -W error``. Both readers of a pair (``distgen.data.expression.check_sparse_format``,
    ``distgen.evaluation.h5pair``) and the streaming reader (``distgen.data.disk.DiskCells``, which asks
    ``position_type_problem`` of its indices' stored type) ask this."""
    said = position_type_problem(positions.dtype)
    if said is None or positions.dtype.kind != "f" or not positions.size:
        return said
    if not bool(np.isfinite(positions).all()):
        return f"{said}, some of them NaN or infinite"
    if not bool((positions == np.round(positions)).all()):
        return f"{said}, some of them not whole numbers"
    return said
