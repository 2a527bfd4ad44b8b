"""The doses a model is asked at (``schema.dose_col``): a condition at its recorded dose, or at doses the caller names.

Every way of asking a model for a condition resolves its doses here: ``distgen predict`` and ``distgen.predict`` (each
held-out group through ``Dataset.labels``, ``distgen.pipeline.predict.generate_group``), ``Dataset.labels`` and
``PerturbationData.labels_for`` (the labels of ``model.predict(control, mask, labels)``). Without ``doses`` a (condition,
context) is asked at the dose its cells carry (one per population: a condition at several doses is a population per dose, ``dexa@10``), so Python and
the command line ask the same; data without a dose column is at dose 1 everywhere. ``doses`` asks others (a dose the
model never saw, a dose-response curve): each is checked (finite, >= 0, one per atom, none for a control, none other than
1 where the data has no dose column) and one outside the doses an atom was trained at warns
(``DoseExtrapolationWarning``), naming that range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from distgen.data.conditions import FLOAT32_MAX, dose_text
from distgen.errors import DistgenWarning, UsageError, warn
from distgen.types import COMBO, ConditionLabels, DataInfo
from distgen.types.layout import canonical_condition
from distgen.wording import counted, first_of, quoted

#: What a ``doses`` entry may be: None (the recorded dose), a number (every atom of the condition), or one per atom.
DoseEntry = float | Sequence[float] | None


class DoseError(UsageError, ValueError):
    """Doses a model cannot be asked at (not a number, negative, NaN, the wrong count, a dose the data has no column for)."""


class DoseExtrapolationWarning(DistgenWarning):
    """A dose outside the range an atom was trained at: the model extrapolates its dose response."""


@dataclass(frozen=True)
class DoseRecord:
    """What a dataset records of doses: ``column`` (``schema.dose_col``, None: every dose is 1), per perturbed (atoms,
    context) its dose per atom (``recorded``), and per atom the lowest and highest dose of the cells it was trained on
    (``ranges``, read off ``trained``: e.g. "the training cells")."""

    column: str | None
    recorded: Mapping[tuple[tuple[str, ...], str], tuple[float, ...]]
    ranges: Mapping[str, tuple[float, float]]
    trained: str
    several: Mapping[tuple[tuple[str, ...], str], tuple[tuple[float, ...], ...]] = dataclasses.field(default_factory=dict)
    """Per perturbed (atoms, context) measured at several doses, those doses (sorted): such a condition is asked by its
    population label (``dex@10``) or with its dose given, never at "its recorded dose"."""


def dose_record(labels: ConditionLabels, info: DataInfo, column: str | None, train: np.ndarray | None = None,
                trained: str = "the training cells") -> DoseRecord:
    """The ``DoseRecord`` of cells labelled ``labels`` (``[N]`` rows in ``info``); ``train`` (row indices, None: every
    cell) are the cells the ranges are read from. One pass over the unique (atoms, dose, context) rows.

    Each dose goes with the atom of its own slot, whatever the slots' order: ``ConditionLabels`` as distgen writes them
    hold a row's atoms sorted with the PAD slots (-1) after them, but a hand-made row ``[PAD, A]`` at ``[0, 5]`` is A at 5
    too (it was A at 0, the PAD slot's dose), and ``[B, A]`` at ``[2, 7]`` is A at 7, B at 2 (recorded as ``B+A``, a key
    no sorted lookup finds)."""
    if column is None:
        return DoseRecord(None, {}, {}, trained)
    pert, dose, ctx = labels.perturbation.numpy(), labels.dose.numpy(), labels.context.numpy()
    perturbed: np.ndarray = np.asarray((pert >= 0).any(axis=1))
    rows = np.concatenate([pert, dose, ctx[:, None]], axis=1, dtype=np.float64)  # ids and float32 doses: exact in float64
    p = pert.shape[1]

    def unique(mask: np.ndarray) -> list[list[float]]:  # hashed (pandas), not sorted as np.unique(axis=0) sorts
        return pd.DataFrame(rows[mask]).drop_duplicates().to_numpy().tolist()  # type: ignore[no-any-return]

    recorded: dict[tuple[tuple[str, ...], str], tuple[float, ...]] = {}
    seen: dict[tuple[tuple[str, ...], str], set[tuple[float, ...]]] = {}
    for r in unique(perturbed):  # each slot's dose with its own atom, by name: a PAD before an atom, or atoms out of order, pair right
        slots = sorted((info.perturbations[int(i)], float(d)) for i, d in zip(r[:p], r[p : 2 * p]) if i >= 0)
        key = (tuple(a for a, _ in slots), info.contexts[int(r[-1])])
        recorded[key] = tuple(d for _, d in slots)
        seen.setdefault(key, set()).add(recorded[key])
    several = {k: tuple(sorted(v)) for k, v in seen.items() if len(v) > 1}
    in_train: np.ndarray = perturbed.copy()
    if train is not None:
        in_train[:] = False
        in_train[np.asarray(train, dtype=np.int64)] = True
        in_train &= perturbed
    ranges: dict[str, tuple[float, float]] = {}
    for r in unique(in_train):
        for i, d in zip(r[:p], r[p : 2 * p]):
            if i >= 0:
                name, d = info.perturbations[int(i)], float(d)
                lo, hi = ranges.get(name, (d, d))
                ranges[name] = (min(lo, d), max(hi, d))
    return DoseRecord(column, recorded, ranges, trained, several)


def resolve_doses(record: DoseRecord, atoms: Sequence[tuple[str, ...]], contexts: Sequence[str], doses: Any,
                  written: Sequence[Sequence[str]] | None = None, where: str = "labels",
                  tagged: Sequence[tuple[float, ...] | None] | None = None, warn_range: bool = True) -> list[tuple[float, ...]]:
    """Per condition, one dose per atom (in the order of ``atoms``: sorted), for asking a model.

    Parameters
    ----------
    record
        The data's ``DoseRecord``.
    atoms, contexts
        Per condition its sorted atoms (empty: a control) and its context.
    doses
        None: every condition at its recorded dose (dose 1 without a dose column). A number: every atom of every
        perturbed condition at it. A sequence, one entry per condition: None (its recorded dose), a number (each of
        its atoms) or one number per atom, in the order the atoms are written in ``written`` (``B+A`` at ``[1, 3]``:
        B at 1, A at 3), as a ``d1+d2`` dose in the file is read.
    written
        Per condition its atoms in the order written (default: ``atoms``).
    where
        The call, named in errors and warnings.
    tagged
        Per condition the doses its population label carries (``dex@10``: data at several doses per condition,
        ``distgen.data.conditions.dose_label``; one per atom of ``atoms``, sorted) or None: asked at them where ``doses``
        gives none (and, as given doses, warned about outside the training range: a held-out top dose is extrapolated).
    warn_range
        False: no ``DoseExtrapolationWarning`` (a caller that replaces these doses by others, and warns about those).
    """
    n = len(atoms)
    spelt: list[tuple[str, ...]] = [tuple(a) for a in (atoms if written is None else written)]
    if doses is None:
        entries: list[Any] = [None] * n
    elif _is_number(doses):
        entries = [None if not a else doses for a in atoms]  # every perturbed condition; a control has no atom to dose
    else:
        if isinstance(doses, str | bytes | Mapping) or not hasattr(doses, "__len__"):
            raise DoseError(f"{where}: doses must be None (each condition at its recorded dose), a number (every condition "
                            f"at it) or a list with one entry per condition, got {type(doses).__name__} {doses!r}")
        entries = doses.tolist() if hasattr(doses, "tolist") else list(doses)
        if len(entries) != n:
            raise DoseError(f"{where}: doses has {counted(len(entries), 'entry', 'entries')} for {counted(n, 'condition')}; give one per "
                            "condition (None: its recorded dose; a number: each of its atoms; a list: one per atom), or one "
                            "number for all")
    measured = [False] * n  # asked at its own measured dose (a population label of the data): not a dose a caller chose
    if tagged is not None:  # a population label's own doses, in the order of its (sorted) atoms
        for i, t in enumerate(tagged):
            if t is not None and entries[i] is None and atoms[i]:
                entries[i], spelt[i] = list(t), tuple(atoms[i])
                key = (tuple(atoms[i]), contexts[i])
                # as models read doses (float32, the record's doses come from the dose tensors): a float64 column's 0.1 is
                # labelled dex@0.1, recorded as float32(0.1), and is its own measured dose (it was worded as a dose asked)
                own = {_f32s(d) for d in (*record.several.get(key, ()), *([record.recorded[key]] if key in record.recorded else []))}
                measured[i] = _f32s(t) in own
    out: list[tuple[float, ...]] = []
    for a, w, ctx, entry in zip(atoms, spelt, contexts, entries):
        name = "+".join(w) if w else "control"
        if entry is None:
            out.append(_recorded(record, a, ctx, name, where))
            continue
        if not a:
            raise DoseError(f"{where}: doses gives the control condition (at {ctx}) the dose {entry!r}, but a control has no "
                            "perturbation to dose; give None for it")
        values = [entry] * len(a) if _is_number(entry) else entry.tolist() if hasattr(entry, "tolist") else entry
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not all(_is_number(v) for v in values):
            raise DoseError(f"{where}: the dose of {name} must be a number or a list of {counted(len(a), 'number')} (one per "
                            f"atom: {', '.join(w)}), got {entry!r}")
        if len(values) != len(a):
            raise DoseError(f"{where}: {name} has {counted(len(a), 'atom')} ({', '.join(w)}) but its doses {list(values)} hold "
                            f"{counted(len(values), 'value')}; give one number (every atom) or one per atom")
        by_atom = dict(zip(w, (float(v) for v in values)))
        for atom, v in by_atom.items():
            if not math.isfinite(v) or v < 0:
                inside = f" (in {name})" if len(a) > 1 else ""
                raise DoseError(f"{where}: dose {v!r} of {atom}{inside} is not a finite number >= 0; a dose is an amount "
                                "(0: none of it)")
            if v > FLOAT32_MAX:  # the model reads doses as float32: it read inf
                raise DoseError(f"{where}: dose {v!r} of {name} is beyond the largest float32 ({FLOAT32_MAX:.4g}), as which the "
                                "model reads it (inf); give it in the unit of the training data's dose column")
        out.append(tuple(by_atom[x] for x in a))
    if warn_range:
        _check_asked(record, atoms, out, [e is not None for e in entries], where, measured)
    return out


def group_doses(record: DoseRecord, conditions: Sequence[str], contexts: Sequence[str], doses: Any, *,
                control: str = "control", delimiters: Sequence[str] = (), where: str = "predict",
                dosed: bool = False) -> list[tuple[float, ...]] | None:
    """Per predicted group (its canonical condition, ``A+B``, and its context) the dose per atom (sorted) it is asked at;
    None when ``doses`` is None (each group at the dose its cells carry).

    What ``distgen.predict``, ``distgen predict --dose`` and ``predict_to_disk(doses=)`` ask: ``doses`` is a number (every
    group's atoms at it), a mapping ``{condition: dose}`` or one entry per group (``resolve_doses``). A mapping's
    conditions are written as the groups write them (``A+B``), in any atom order or with the data's combination
    ``delimiters`` (``B_A``); each is a number (every atom) or one number per atom in the order the key writes them (``B+A``
    at ``[2, 5]``: B at 2, A at 5); a condition not named is asked at its own dose. A condition no group holds, or one named
    twice, is a ``DoseError``; the rest is ``resolve_doses``'s (checked, doses outside the training range warned about once).

    ``dosed``: the groups are populations of data at several doses per condition, labelled ``dex@10``
    (``distgen.data.conditions.dose_label``). A mapping's key is then a population label (that group) or a condition
    without doses (``dex``: every group of it, whatever its measured dose; a population label named too wins).
    """
    if doses is None:
        return None
    if dosed:
        from distgen.data.conditions import condition_string, parse_dose_label, population_of

        read = [parse_dose_label(c, COMBO) for c in conditions]
        atoms = [r[0] if r is not None else tuple(c.split(COMBO)) for c, r in zip(conditions, read)]
        if isinstance(doses, Mapping):  # a condition without doses names each of its populations
            base = [condition_string(a, COMBO) for a in atoms]
            labels, bases = set(conditions), set(base)
            keys: dict[str, Any] = {}
            order: dict[str, tuple[str, ...]] = {}  # a label key's atoms in the order it writes them
            for k, v in doses.items():  # a population label in any part order (saha@100+dexa@10) is that population
                sorted_ = canonical_condition(str(k), control, delimiters, ())
                name = sorted_ if sorted_ in labels and str(k) not in labels else str(k)
                if name not in labels:  # its dose as models read it: dex@0.30000001192092896 (an earlier label) is dex@0.3
                    name = population_of(sorted_, labels, COMBO) or name
                keys[name] = v
                if name in labels:
                    order[name] = tuple(part.rpartition("@")[0] for part in _written(str(k), control, delimiters))
            by_base: dict[str, str] = {}
            for k in keys:
                if k in labels:
                    continue
                b = canonical_condition(k, control, delimiters, ())
                if b not in bases:
                    raise DoseError(f"{where}: doses names {k!r}, neither a population predicted nor a condition of one "
                                    f"({first_of(sorted(bases), 8, render=quoted, enclosed=True)}); write a condition as "
                                    "they do (A+B), or one population by its label (dex@10)")
                if b in by_base:
                    raise DoseError(f"{where}: doses names the condition {b} twice ({by_base[b]!r} and {k!r}); give it one dose")
                by_base[b] = k
            entries_: list[Any] = []
            spelt_: list[tuple[str, ...]] = []
            for c, a, b in zip(conditions, atoms, base):
                if c in keys:
                    entries_.append(keys[c])
                    spelt_.append(order[c])
                elif b in by_base:
                    entries_.append(keys[by_base[b]])
                    spelt_.append(_written(by_base[b], control, delimiters))
                else:
                    entries_.append(None)
                    spelt_.append(tuple(a))
            return resolve_doses(record, atoms, contexts, entries_, spelt_, where, read_tags(read))
        return resolve_doses(record, atoms, contexts, doses, None, where, read_tags(read))
    atoms = [tuple(c.split(COMBO)) for c in conditions]  # predicted groups are perturbed, their atoms sorted
    spelt: list[tuple[str, ...]] | None = None
    if isinstance(doses, Mapping):
        held = list(dict.fromkeys(conditions))
        named: dict[str, tuple[str, Any, tuple[str, ...]]] = {}
        unknown = []
        for key, entry in doses.items():
            text = str(key)
            canon = text if text in held else canonical_condition(text, control, delimiters, ())
            if canon not in held:
                unknown.append(text)
                continue
            if canon in named:
                raise DoseError(f"{where}: doses names the condition {canon} twice ({named[canon][0]!r} and {text!r}); "
                                "give it one dose")
            written = tuple(canon.split(COMBO)) if text == canon else _written(text, control, delimiters)
            named[canon] = (text, entry, written)
        if unknown:
            raise DoseError(f"{where}: doses names {first_of(unknown, 5, render=repr)}, not a condition of the groups predicted "
                            f"({counted(len(held), 'condition')}: {first_of(held, 8, render=quoted, enclosed=True)}); "
                            "write a condition as they do (A+B)")
        entries: Any = [named[c][1] if c in named else None for c in conditions]
        spelt = [named[c][2] if c in named else a for c, a in zip(conditions, atoms)]
    else:
        entries = doses
    return resolve_doses(record, atoms, contexts, entries, spelt, where)


def read_tags(read: Sequence[tuple[tuple[str, ...], tuple[float, ...]] | None]) -> list[tuple[float, ...] | None]:
    """Per ``parse_dose_label`` result its doses (None where a label carried none): ``resolve_doses``'s ``tagged``."""
    return [None if r is None else r[1] for r in read]


def _written(label: str, control: str, delimiters: Sequence[str]) -> tuple[str, ...]:
    """The atoms of ``label`` in the order it writes them (``canonical_condition``'s split, not sorted; repeats once)."""
    parts = [label]
    for d in [COMBO, *(x for x in delimiters if x and x != COMBO)]:
        parts = [q for p in parts for q in p.split(d)]
    atoms = [a.strip() for a in parts if a.strip()]
    kept = atoms if len(atoms) == 1 else [a for a in atoms if a != control.strip()]
    return tuple(dict.fromkeys(kept))


def with_doses(labels: ConditionLabels, names: Sequence[str], dose: Mapping[str, float]) -> ConditionLabels:
    """``labels`` with every atom slot at ``dose[its atom's name]`` (``names``: the labels' atom vocabulary), PAD slots 0.

    Order-proof: each slot gets its own atom's dose, wherever the slots' PADs sit."""
    rows = [[float(dose[names[i]]) if i >= 0 else 0.0 for i in r] for r in labels.perturbation.tolist()]
    return dataclasses.replace(labels, dose=torch.tensor(rows, dtype=labels.dose.dtype).reshape(labels.dose.shape))


def _f32s(doses: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(np.float32(d)) for d in doses)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _recorded(record: DoseRecord, atoms: tuple[str, ...], context: str, name: str, where: str) -> tuple[float, ...]:
    """The recorded dose of ``atoms`` in ``context`` (dose 1 without a dose column); ``DoseError`` when it has none."""
    if record.column is None or not atoms:
        return tuple(1.0 for _ in atoms)
    several = record.several.get((atoms, context))
    if several is not None:
        from distgen.data.conditions import dose_label

        raise DoseError(f"{where}: {name} was measured at {counted(len(several), 'dose')} in {context} ({first_of(several, 6, render=_shown, enclosed=True)}"
                        "), each a population of its own: ask one by its label ("
                        f"{dose_label(atoms, several[-1])}) or give the dose to ask it at (doses=...)")
    hit = record.recorded.get((atoms, context))
    if hit is not None:
        return hit
    elsewhere = sorted((k, d) for (a, k), d in record.recorded.items() if a == atoms)
    seen = (f"; it was recorded in {', '.join(f'{k} at {_shown(d)}' for k, d in elsewhere[:4])}" if elsewhere else
            f"; the doses its atoms were trained at: {_ranges(record, atoms)}" if any(x in record.ranges for x in atoms) else "")
    raise DoseError(f"{where}: {name} has no recorded dose in {context} (dose_col {record.column!r}: no cell of the data "
                    f"is {name} there){seen}. Say the dose to ask it at, e.g. doses=[...] with one number (or one per "
                    "atom) for it")


def _check_asked(record: DoseRecord, atoms: Sequence[tuple[str, ...]],
                 doses: list[tuple[float, ...]], given: list[bool], where: str, measured: Sequence[bool] = ()) -> None:
    """Refuse doses other than 1 without a dose column; warn once per call about doses outside an atom's training range.

    ``measured``: per condition, whether its dose is its own measured one (a population of the data asked by its label,
    ``dex@1000``): outside the training range that is a population held out at a dose training never reached (the top
    dose of ``held_out_dose``), worded so (the model extrapolates there and the measured cells score it), not as a dose
    a caller asked."""
    if record.column is None:
        bad = sorted({(a, d) for at, ds, g in zip(atoms, doses, given) if g for a, d in zip(at, ds) if d != 1.0})
        if bad:
            raise DoseError(f"{where}: the data has no dose column (schema.dose_col), so the model was trained with every "
                            f"perturbation at dose 1 and no dose means anything to it; asked {', '.join(f'{a} at {d:g}' for a, d in bad[:4])}. "
                            "Leave doses out, or train on data with doses (data.schema.dose_col: the obs column holding them)")
        return
    outside: dict[str, set[float]] = {}
    held: dict[str, set[float]] = {}
    own = list(measured) or [False] * len(atoms)
    for at, ds, g, m in zip(atoms, doses, given, own):
        for a, d in zip(at, ds):
            lo, hi = record.ranges.get(a, (d, d))  # an atom never trained: the pre-flight's business, not the dose's
            if g and not lo <= float(np.float32(d)) <= hi:  # as the model reads it: the ranges are of float32 dose tensors
                (held if m else outside).setdefault(a, set()).add(d)
    if held:
        said = "; ".join(f"{a} measured at {', '.join(dose_text(d) for d in sorted(ds)[:4])}, {record.trained} carry it at "
                         f"{_span(record.ranges[a])}" for a, ds in sorted(held.items())[:5])
        which = ("above" if all(d > record.ranges[a][1] for a, ds in held.items() for d in ds) else
                 "below" if all(d < record.ranges[a][0] for a, ds in held.items() for d in ds) else "above or below")
        warn(f"{where}: populations predicted at their own measured dose, outside the range {record.trained} carry ({said}): "
             f"no training cell is at such a dose (a held-out dose {which} every training dose: held_out_dose's top dose, or "
             "one listed in test_doses), so the model extrapolates its dose response there; their measured cells are what "
             "scores it", DoseExtrapolationWarning)
    if outside:
        said = "; ".join(f"{a} asked at {', '.join(f'{d:g}' for d in sorted(ds)[:4])}, {record.trained} carry it at "
                         f"{_span(record.ranges[a])}" for a, ds in sorted(outside.items())[:5])
        warn(f"{where}: doses outside the range {record.trained} carry ({said}): the model extrapolates its dose response "
             "there, and no measured cell checks it", DoseExtrapolationWarning)


def _span(r: tuple[float, float]) -> str:
    return f"{r[0]:g}" if r[0] == r[1] else f"{r[0]:g} to {r[1]:g}"


def _shown(d: tuple[float, ...]) -> str:
    return "+".join(f"{x:g}" for x in d)


def _ranges(record: DoseRecord, atoms: tuple[str, ...]) -> str:
    return ", ".join(f"{a} {_span(record.ranges[a])}" for a in atoms if a in record.ranges)


__all__ = ["DoseError", "DoseExtrapolationWarning", "DoseRecord", "dose_record", "group_doses", "resolve_doses", "with_doses"]
