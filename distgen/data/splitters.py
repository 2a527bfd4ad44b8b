"""``make_split``: the held-out settings of the field, as pure functions of a dataset and a seed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from distgen.data.conditions import dose_text
from distgen.data.groups import draw_order
from distgen.data.schema import CONTEXT_SEPARATOR
from distgen.data.split import SPLIT_KINDS, Split
from distgen.errors import InputDataError
from distgen.types.layout import form_hint, form_pairs
from distgen.wording import counted, first_of

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData


def _n_pick(n: int, frac: float) -> int:
    return max(1, round(frac * n)) if n else 0


def _choose(items: Sequence[Any], frac: float, rng: np.random.Generator, given: Sequence[Any] | None, what: str,
            delimiter: str | None = None) -> list[Any]:
    items = sorted(items)
    if given is not None:
        unknown = sorted(set(given) - set(items))
        if unknown:
            forms = form_pairs([u for u in unknown if isinstance(u, str)], [i for i in items if isinstance(i, str)])
            raise InputDataError(f"{what} {first_of(unknown, 5, render=repr)} cannot be held out; eligible: {first_of(items, 20, render=repr)}"
                                 + (f"; {form_hint(forms, 'the data')}" if forms else "")
                                 + (_empty_atom_hint(unknown, items, delimiter) if delimiter else ""))
        return sorted(given)
    if not items:
        return []
    pick = rng.permutation(len(items))[: _n_pick(len(items), frac)]
    return sorted(items[i] for i in pick)


def _empty_atom_hint(unknown: Sequence[Any], items: Sequence[Any], delimiter: str) -> str:
    """For held-out conditions of ``unknown`` with an empty atom (``A++B``, ``A+B+``; split on the data's ``delimiter``): why
    they are not read as loading reads such a label (an empty atom may be one left out, ``A+C+B``), and the condition the
    named atoms make where the data has it. Conditions only: a context ``CD4+`` has no atoms (until the review of the
    combinations leftovers round every name not found was split on ``+``)."""
    hints = []
    for u in unknown:
        parts = [p.strip() for p in str(u).split(delimiter)] if isinstance(u, str) else []
        if len(parts) > 1 and not all(parts):
            named = delimiter.join(sorted(set(p for p in parts if p)))
            hints.append(f"{u!r} has an empty atom (two delimiters in a row, or one at an end), which may be an atom left out, "
                         "so it is not read as loading reads such a label"
                         + (f"; write {named!r} if that is meant" if named in set(items) else ""))
    return "; " + "; ".join(hints) if hints else ""


def _canonical(condition: str, data: PerturbationData) -> str:
    """A held-out condition as the data spells it, read as loading reads a cell's label: a combination's atoms in canonical
    (sorted) order, spaces trimmed, a repeated atom once and a control atom left out (GEARS ``A+ctrl`` is ``A``; a label
    of control atoms only is kept as written, to be refused by name)."""
    delim = data.schema.combo_delimiter
    atoms = [a.strip() for a in str(condition).split(delim)]
    named = sorted({a for a in atoms if a not in set(data.schema.control_labels)})
    return delim.join(named) if len(atoms) > 1 and all(atoms) and named else str(condition).strip()


def _trimmed_context(context: str, data: PerturbationData) -> str:
    """A held-out context as the data spells it: trimmed as loading trims it, each ``|``-joined part of a context of several
    columns on its own (one column's value is one part, whatever it holds: loading never splits it)."""
    if len(data.schema.context_cols) < 2:
        return str(context).strip()
    return CONTEXT_SEPARATOR.join(p.strip() for p in str(context).split(CONTEXT_SEPARATOR))


def _check_given_pairs(given: Sequence[tuple[Any, ...]], pairs: Sequence[tuple[str, str]], n_ctx: dict[str, int]) -> None:
    """Refuse given ``held_out_context_perturbation`` pairs that cannot all be held out with their condition training in
    another context: a condition measured in one context only, or every context of a condition given (the last pair was
    dropped without a word until 2026-12-07)."""
    where: dict[str, list[str]] = {}
    for c, k in pairs:
        where.setdefault(c, []).append(k)
    lonely = sorted({str(g[0]) for g in given if tuple(g) in set(pairs) and n_ctx.get(str(g[0]), 0) < 2})
    if lonely:
        raise InputDataError(f"held_out_context_perturbation holds a pair out while its condition trains in another context, but "
                             f"{first_of(lonely, 5, render=repr)} {'is' if len(lonely) == 1 else 'are'} measured in one context only "
                             f"({', '.join(f'{c!r} in {where[c][0]!r}' for c in lonely[:5])}); use held_out_context or "
                             "random_conditions to hold such a condition out")
    asked: dict[str, set[str]] = {}
    for g in given:
        asked.setdefault(str(g[0]), set()).add(str(g[1]) if len(g) > 1 else "")
    every = sorted(c for c, ks in asked.items() if c in where and set(where[c]) <= ks)
    if every:
        c = every[0]
        raise InputDataError(f"held_out_context_perturbation: the pairs given hold out {c!r} in every context it was measured in "
                             f"({', '.join(map(repr, sorted(where[c])))}), so {c!r} would have no training context to be learnt "
                             "from; keep one of its contexts in training, or hold the condition out with random_conditions")


def seen_count(atoms: Sequence[str], train_singles: set[str]) -> int:
    """How many atoms of a combination are seen as singles in training (GEARS ``seen0/1/2``)."""
    return sum(a in train_singles for a in atoms)


def _warn_large_combinations(kind: str, large: list[str], test: set[str], train_singles: set[str], delim: str) -> None:
    """Say how a ``combo_seen`` split placed combinations of three or more atoms: the kinds count the atoms seen as singles
    whatever a combination's size (GEARS defines seen0/1/2 for pairs), so ``combo_seen2`` holds ``A+B+C`` with ``C`` never
    seen alone, and a combination with every atom seen is in no kind. Silent until the review of the combinations round."""
    if not large:
        return
    from distgen.errors import warn

    def seen(c: str) -> str:
        atoms = c.split(delim)
        return f"{c!r} ({seen_count(atoms, train_singles)} of {len(atoms)} seen)"

    held = [seen(c) for c in large if c in test]
    every = [c for c in large if c not in test and seen_count(c.split(delim), train_singles) == len(c.split(delim))]
    said = f"its test holds {first_of(held, 5)}" if held else "its test holds none of them"
    rest = (f"; {first_of(every, 5, render=repr)} have every atom seen and are in no combo_seen kind (hold them out with "
            "random_conditions and test_conditions)") if every else ""
    warn(f"{kind} counts the atoms seen as singles in training whatever a combination's size (GEARS defines seen0/1/2 for pairs), "
         f"and the data has {len(large)} combination(s) of three or more atoms: {said}{rest}. Read its scores as those of "
         "combinations with that many atoms seen, not of pairs (docs/data.md, 'Splits')")


def _test_mask(data: PerturbationData, kind: str, rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    """``[N]`` bool: perturbed cells held out for test."""
    # a condition without its doses (data at several doses per condition, dex@10): a condition held out is held out at
    # every dose, so no dose of it leaks into training
    cond, ctx, bat = getattr(data, "base_conditions", data.conditions), data.contexts, data.batches
    pert = ~data.is_control
    conds = sorted(set(cond[pert]))
    atoms = {c: tuple(c.split(data.schema.combo_delimiter)) for c in conds}
    singles = [c for c in conds if len(atoms[c]) == 1]
    combos = [c for c in conds if len(atoms[c]) > 1]
    if kind == "random_conditions":
        test = _choose(conds, p["test_frac"], rng, p["test_conditions"], "conditions", data.schema.combo_delimiter)
        return np.isin(cond, test)
    if kind == "unseen_single":
        held = set(_choose(singles, p["test_frac"], rng, p["test_conditions"], "single perturbations", data.schema.combo_delimiter))
        test = [c for c in conds if set(atoms[c]) & held]
        return np.isin(cond, test)
    if kind.startswith("combo_seen"):
        k = int(kind[-1])
        if not combos:
            raise InputDataError(f"split kind {kind!r} needs combinations (labels joined by {data.schema.combo_delimiter!r}); the data has none")
        held_singles = _choose(singles, p["holdout_singles"], rng, None, "singles") if p["holdout_singles"] > 0 else []
        train_singles = {atoms[c][0] for c in singles if c not in held_singles}
        eligible = [c for c in combos if seen_count(atoms[c], train_singles) == k]
        if not eligible:
            counts = {c: seen_count(atoms[c], train_singles) for c in combos}
            raise InputDataError(
                f"no combination has exactly {k} constituent(s) seen as singles in training (seen counts: {counts}); "
                "use another combo_seen kind or hold out singles with holdout_singles > 0"
            )
        test = _choose(eligible, p["test_frac"], rng, p["test_conditions"], f"seen{k} combinations", data.schema.combo_delimiter) + list(held_singles)
        # a training combination made only of held-out atoms would teach them: hold out any combo that holds a held-out single
        held_atoms = {atoms[c][0] for c in held_singles}
        test += [c for c in combos if set(atoms[c]) & held_atoms and c not in test]
        _warn_large_combinations(kind, [c for c in combos if len(atoms[c]) > 2], set(test), train_singles, data.schema.combo_delimiter)
        return np.isin(cond, test)
    if kind == "held_out_context":
        contexts = sorted(set(ctx))
        if len(contexts) < 2:
            raise InputDataError(f"split kind 'held_out_context' needs >= 2 contexts; the data has {contexts} (set context_cols)")
        # a context of control cells only has nothing to hold out: drawn, it gave an empty test set (or fewer held-out
        # contexts than test_frac asks); given, it is named
        perturbed = sorted(set(ctx[pert]))
        idle = sorted(set(p["test_contexts"] or ()) & (set(contexts) - set(perturbed)))
        if idle:
            raise InputDataError(f"{counted(len(idle), 'context')} ({first_of(idle, 5, render=repr, enclosed=True)}) "
                                 f"{'holds' if len(idle) == 1 else 'hold'} control cells only, so held_out_context has no perturbed "
                                 f"cells of {'it' if len(idle) == 1 else 'them'} to hold out; hold out contexts with perturbed cells: "
                                 f"{first_of(perturbed, 20, render=repr)}")
        test_ctx = _choose(perturbed, p["test_frac"], rng, p["test_contexts"], "contexts")
        if len(test_ctx) == len(contexts):
            raise InputDataError("held_out_context would hold out every context, leaving nothing to train on; lower test_frac")
        return pert & np.isin(ctx, test_ctx)
    if kind == "held_out_context_perturbation":
        pairs = sorted({(c, k) for c, k in zip(cond[pert], ctx[pert])})
        n_ctx = {c: len({k for cc, k in pairs if cc == c}) for c in conds}
        eligible = [pr for pr in pairs if n_ctx[pr[0]] >= 2]
        if not eligible:
            raise InputDataError(
                "held_out_context_perturbation needs perturbations observed in >= 2 contexts (so each held-out pair is seen "
                "in another context); none are. Use held_out_context or random_conditions instead"
            )
        given = [tuple(g) for g in p["test_groups"]] if p["test_groups"] is not None else None
        if given:
            _check_given_pairs(given, pairs, n_ctx)
        order = _choose(eligible, 1.0, rng, given, "(condition, context) pairs") if given else [eligible[i] for i in rng.permutation(len(eligible))]
        want = len(order) if given else _n_pick(len(eligible), p["test_frac"])
        left = dict(n_ctx)
        test_pairs: list[tuple[str, str]] = []
        for c, k in order:
            if len(test_pairs) == want:
                break
            if left[c] >= 2:
                test_pairs.append((c, k))
                left[c] -= 1
        return pert & np.isin(np.char.add(cond.astype(str), np.char.add("\x1f", ctx.astype(str))), [f"{c}\x1f{k}" for c, k in test_pairs])
    if kind == "held_out_batch":
        batches = sorted(set(bat))
        if len(batches) < 2:
            raise InputDataError(f"split kind 'held_out_batch' needs >= 2 batches; the data has {batches} (set PerturbationSchema.batch_col)")
        test_b = _choose(batches, p["test_frac"], rng, p["test_batches"], "batches")
        if len(test_b) == len(batches):
            raise InputDataError("held_out_batch would hold out every batch; lower test_frac")
        return pert & np.isin(bat, test_b)
    if kind == "held_out_dose":
        return pert & _top_doses(data, rng, p)
    raise ValueError(f"unknown split kind {kind!r}; available: {list(SPLIT_KINDS)}")


def held_doses(value: Any, kind: str = "held_out_dose") -> str | list[float | str]:
    """``test_doses`` as a split records it: ``"top"``, ``"interior"`` or the distinct measured doses, numbers (floats,
    sorted) then doses per slot of a combination (``"5+10"``: one number per atom, in the order of the atoms sorted as text,
    as ``dexa+saha`` writes them; written back as the label writes doses, sorted); ``ValueError`` naming the forms for
    anything else, or for another split kind."""
    if kind != "held_out_dose":
        raise ValueError(f"test_doses applies to split kind 'held_out_dose' only (got kind {kind!r}); drop test_doses or use "
                         "kind held_out_dose")
    if isinstance(value, str) and value in ("top", "interior"):
        return value
    items = [value] if isinstance(value, int | float | str) and not isinstance(value, bool) else value
    forms = ("test_doses must be 'top' (the highest dose: extrapolation), 'interior' (the doses between the lowest and "
             "highest: interpolation) or measured doses (a number or a list of numbers; of a combination, also 'd1+d2', one dose "
             f"per atom, the atoms sorted as text: dexa@5+saha@10 is '5+10'), got {value!r}")
    try:
        if isinstance(items, bytes) or not len(items) or any(isinstance(x, bool) for x in items):
            raise TypeError
        numbers: set[float] = set()
        slots: set[tuple[float, ...]] = set()
        for x in items:
            if isinstance(x, str):
                parts: list[Any] = x.split("+")
                if any(not p.strip() or "_" in p for p in parts):
                    raise ValueError  # '5+', '1_000' (a digit separator to Python)
            else:
                parts = [x]
            read = tuple(float(p) for p in parts)
            (slots.add(read) if len(read) > 1 else numbers.add(read[0]))
    except (TypeError, ValueError, AttributeError):
        raise ValueError(forms) from None
    if not all(np.isfinite(x) and x >= 0 for x in (*numbers, *(d for t in slots for d in t))):
        raise ValueError(f"test_doses: doses are finite numbers >= 0, got {value!r}")
    return [*sorted(numbers), *(_dose_text(t) for t in sorted(slots))]


def listed_doses(which: Sequence[float | str]) -> tuple[set[float], set[tuple[float, ...]]]:
    """A recorded list of ``test_doses`` (``held_doses``) read as models read doses (float32): the numbers (each matches
    a population whose atoms are all at it) and the doses per slot (each matches a combination at them, slot by slot)."""
    numbers = {_f32(float(w)) for w in which if not isinstance(w, str) or "+" not in w}
    slots = {tuple(_f32(float(p)) for p in w.split("+")) for w in which if isinstance(w, str) and "+" in w}
    return numbers, slots


def _dose_text(doses: Sequence[float] | tuple[float, ...]) -> str:
    return "+".join(dose_text(d) for d in doses)


def _top_doses(data: PerturbationData, rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    """``[N]`` bool: the held-out doses of the held-out conditions, in each context where the condition was measured at
    several doses. ``test_doses`` (``p``): absent or ``top``, the highest dose (chemCPA's held-out dose: the model has seen
    the drug at its lower doses, and extrapolates); ``interior``, every dose strictly between a condition's lowest and
    highest in that context (interpolation: each held-out dose lies between two training doses); a list of numbers,
    those measured doses (a population of a combination matches a number when every atom is at it)."""
    if not getattr(data, "dosed", False):
        raise InputDataError("split kind 'held_out_dose' needs conditions measured at several doses in a context (data.schema.dose_col "
                             "with several doses per condition); this data has one dose per (condition, context). Use random_conditions")
    which = p.get("test_doses", "top")
    pops = pd.DataFrame({"p": data.conditions, "b": data.base_conditions, "k": data.contexts})[~data.is_control].drop_duplicates()
    pops["dose"] = [data.dose_of(c)[1] for c in pops["p"]]
    pops = pops[pops.groupby(["b", "k"])["p"].transform("size") > 1]
    by_group = {bk: sorted(grp["dose"]) for bk, grp in pops.groupby(["b", "k"], sort=True)}
    label = {(d, b, k): c for c, b, k, d in zip(pops["p"], pops["b"], pops["k"], pops["dose"])}
    measured: dict[str, set[tuple[float, ...]]] = {}  # per condition its doses (per slot) in any context, as models read them
    for (b, _), ds in by_group.items():
        measured.setdefault(b, set()).update(_f32s(d) for d in ds)
    # as models read doses (a float32 column: 0.3 is 0.30000001192092896); a number matches every atom at it, 'd1+d2' slot by slot
    asked, asked_slots = (set(), set()) if isinstance(which, str) else listed_doses(which)

    def wanted(b: str) -> set[tuple[float, ...]]:  # the listed doses of b: 'd1+d2' of its size, else the numbers (every atom at it)
        n = len(b.split(data.schema.combo_delimiter))
        return {t for t in asked_slots if len(t) == n} or {(w,) * n for w in asked}

    def held(b: str, k: str) -> list[tuple[float, ...]]:
        ds = by_group[(b, k)]
        if which == "top":
            return top_doses(ds)
        if which == "interior":
            return interior_doses(ds)
        return [d for d in ds if _f32s(d) in wanted(b)]

    def fits(b: str) -> bool:  # a condition the request can be made of (in some context)
        if which == "top":
            return any(top_doses(ds) for (bb, _), ds in by_group.items() if bb == b)
        if which == "interior":
            return any(interior_doses(ds) for (bb, _), ds in by_group.items() if bb == b)
        return bool(wanted(b)) and wanted(b) <= measured.get(b, set())

    everyone = sorted(set(pops["b"]))
    if asked_slots:
        _check_label_order(data, pops["p"], asked_slots, everyone if p["test_conditions"] is None else p["test_conditions"])
    if p["test_conditions"] is not None:
        for b in p["test_conditions"]:
            if b not in everyone or fits(b):
                continue
            where = "; ".join(f"{_dose_text_list(ds)} in {k}" for (bb, k), ds in by_group.items() if bb == b)
            if which == "top":
                raise InputDataError(f"held_out_dose with test_doses=top: {b!r} has no top dose (measured at {where}): of a "
                                     "combination, the top dose is the one at the highest dose of every slot at once, and none "
                                     "is measured. Hold out measured doses by name (test_doses: ['d1+d2'], one dose per atom "
                                     "of the atoms sorted as text) or leave it out of test_conditions")
            if which == "interior":
                raise InputDataError(f"held_out_dose with test_doses=interior: {b!r} has no interior dose (measured at {where}): an "
                                     "interior dose needs three doses or more in a context, the lowest and highest training (of a "
                                     "combination, a dose between two others in every slot). Hold out "
                                     "its top dose (test_doses: top) or leave it out of test_conditions")
            if not wanted(b):
                n = len(b.split(data.schema.combo_delimiter))
                raise InputDataError(f"held_out_dose: test_doses {_listed(which)} names no dose of {b!r}, a condition of "
                                     f"{n} atoms (measured at {where}): a dose per slot ('d1+d2') applies to combinations of as "
                                     f"many atoms; add a dose of it, or leave {b!r} out of test_conditions")
            missing = [w for w in which if _f32s(_slots_of(w, b, data)) in wanted(b) - measured.get(b, set())]
            raise InputDataError(f"held_out_dose: test_doses {_listed(missing)} is not a measured dose of {b!r} (measured at {where}); "
                                 f"give doses it was measured at (data.split.test_doses; of a combination, one dose per atom in "
                                 f"the order of its atoms sorted as text), or leave {b!r} out of test_conditions")
    eligible = [b for b in everyone if fits(b)]
    if not eligible:
        what = ("three doses or more in a context (test_doses=interior: an interior dose between two training doses)" if which == "interior"
                else "a top dose (test_doses=top: of a combination, at the highest dose of every slot at once)" if which == "top"
                else f"every dose of test_doses ({_listed(which)}) that applies to it")
        raise InputDataError(f"held_out_dose: no condition is measured at {what}; the conditions at several doses are "
                             f"{first_of(everyone, 10, render=repr)}. Choose doses they were measured at, or test_doses: top")
    chosen = set(_choose(eligible if p["test_conditions"] is None else everyone, p["test_frac"], rng, p["test_conditions"],
                         "conditions measured at several doses", data.schema.combo_delimiter))
    top: set[tuple[str, str]] = set()
    for (b, k), ds in by_group.items():
        if b not in chosen:
            continue
        out = held(b, k)
        if len(out) == len(ds):
            raise InputDataError(f"held_out_dose: test_doses {_dose_text_list(out)} would hold out every dose of "
                                 f"{b!r} in {k} ({_dose_text_list(ds)}), leaving none of its doses to train on; hold out fewer doses")
        top |= {(label[(d, b, k)], k) for d in out}
    _warn_trained_elsewhere(data, top)
    return np.array([(c, k) in top for c, k in zip(data.conditions.tolist(), data.contexts.tolist())], dtype=bool)


def _warn_trained_elsewhere(data: PerturbationData, held: set[tuple[str, str]]) -> None:
    """Warn when a held-out population (``dexa@1000`` in A549) trains in another context (``dexa@1000`` in HEK, where the
    drug may have one dose only): ``held_out_dose`` holds a dose out per context, so the model has seen the drug at that
    very dose, and the score is not one of a dose it never saw."""
    pert = ~np.asarray(data.is_control)
    present = set(zip(np.asarray(data.conditions)[pert].tolist(), np.asarray(data.contexts)[pert].tolist()))
    elsewhere = {c: sorted(k2 for c2, k2 in present if c2 == c and (c2, k2) not in held) for c, _ in held}
    shown = sorted((c, ks) for c, ks in elsewhere.items() if ks)
    if not shown:
        return
    from distgen.errors import warn

    said = first_of(shown, 5, "; ", lambda cks: f"{cks[0]} held out in {', '.join(sorted(k for c2, k in held if c2 == cks[0]))} "
                    f"trains in {', '.join(cks[1])}")
    warn(f"held_out_dose holds doses out per context, and {len(shown)} held-out population(s) train in another context at the "
         f"same dose: {said}. The model sees the drug at that very dose, so its score there is not one of an unseen dose; "
         "to hold a dose out everywhere, put every context of the condition in the test (or drop those contexts' cells)")


def dominates(dose: Sequence[float], other: Sequence[float]) -> bool:
    """Whether ``dose`` is at or above ``other`` in every slot (one number per atom of a combination), being not it."""
    return tuple(dose) != tuple(other) and all(x >= y for x, y in zip(dose, other, strict=True))


def top_doses(doses: Sequence[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """The dose of ``doses`` (one tuple per population of a condition in a context) above every other in every slot, or
    none: for one atom, the highest. For a combination, not the last of the tuples in order: ``(1000, 1)`` sorts above
    ``(1, 1000)`` but is below it in its second slot (held out, the model would have trained at a higher dose of that
    atom, in this combination). Judged slot by slot as ``interior_doses`` is."""
    return [d for d in doses if all(dominates(d, o) for o in doses if o != d)] if len(doses) > 1 else []


def between(lo: Sequence[float], dose: Sequence[float], hi: Sequence[float]) -> bool:
    """Whether ``dose`` lies between ``lo`` and ``hi`` in every slot (one number per atom of a combination), being neither."""
    return tuple(lo) != tuple(dose) != tuple(hi) and all(a <= x <= b for a, x, b in zip(lo, dose, hi, strict=True))


def interior_doses(doses: Sequence[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """The doses of ``doses`` (one tuple per population of a condition in a context) that lie between two others in every
    slot: for one atom, all but the lowest and highest. For a combination, not an order of tuples: ``(1, 1000)`` between
    ``(1, 1)`` and ``(1000, 1)`` as tuples is above both in its second slot (an extrapolation held out as interior).
    Holding them all out leaves each between two training doses (a lowest and a highest, which are never interior)."""
    return [d for d in doses if any(between(lo, d, hi) for lo in doses for hi in doses)]


def _f32(dose: float) -> float:
    """A dose as models read it (float32): a listed ``test_doses`` matches a measured dose equal to it there."""
    return float(np.float32(dose))


def _check_slot_order(conditions: Sequence[str] | None, which: str | list[float | str], data: PerturbationData) -> None:
    """Refuse a dose per slot (``'5+10'``) beside a combination of ``test_conditions`` written in another order than its
    population label's (``saha+dexa``: the label is ``dexa@5+saha@10``): which atom is at 5 would be read silently the
    other way round from what the condition's order suggests."""
    if isinstance(which, str) or conditions is None:
        return
    slots = [t for t in listed_doses(which)[1] if len(set(t)) > 1]
    delim, controls = data.schema.combo_delimiter, set(data.schema.control_labels)
    for c in conditions:
        # the atoms in the order written, as _canonical reads them (a control atom left out, a repeated atom at its first
        # place): 'saha+dexa+vehicle' was read as dexa+saha without this check until the review of the combinations round
        atoms = list(dict.fromkeys(a for a in (p.strip() for p in str(c).split(delim)) if a not in controls))
        if len(atoms) > 1 and atoms != sorted(atoms) and any(len(t) == len(atoms) for t in slots):
            raise InputDataError(f"held_out_dose: test_doses gives doses per slot ({_listed([w for w in which if isinstance(w, str)])}), "
                                 f"read in the order of a population label's atoms (sorted as text: {delim.join(sorted(atoms))}), "
                                 f"but test_conditions writes {str(c)!r}: write it {delim.join(sorted(atoms))!r} so the doses "
                                 "read in the order written")


def _check_label_order(data: PerturbationData, labels: Iterable[str], slots: set[tuple[float, ...]], conditions: Iterable[str]) -> None:
    """Refuse unequal doses per slot (``'10+5'``) of a condition of ``conditions`` whose population labels write its atoms in
    another order than they are read in (the atoms sorted as text): ``dexa`` and ``dexa2`` are labelled ``dexa2@10+dexa@5``
    (the parts sorted with their doses, '2' below '@'), so '10+5' written from the label would silently name
    ``dexa2@5+dexa@10``, another population."""
    delim = data.schema.combo_delimiter
    wanted = set(map(str, conditions))
    for c in labels:
        atoms = data.dose_of(c)[0]
        base = data.base_condition(c)
        if base not in wanted or not any(len(t) == len(atoms) and len(set(t)) > 1 for t in slots):
            continue
        written = tuple(part.strip().rpartition("@")[0] for part in str(c).split(delim))
        if written != atoms:
            raise InputDataError(f"held_out_dose: test_doses gives doses per slot ({_listed([_dose_text(t) for t in sorted(slots)])}), "
                                 f"read in the order {', '.join(atoms)} (the atoms of {base!r} sorted as text), but the population "
                                 f"labels of {base!r} write them in another order ({c!r}): which atom is at which dose is "
                                 f"ambiguous. Hold out its populations by equal doses, test_doses: top or interior, or rename "
                                 f"an atom so that no name starts another")



def _f32s(doses: Sequence[float]) -> tuple[float, ...]:
    return tuple(_f32(d) for d in doses)


def _slots_of(w: float | str, condition: str, data: PerturbationData) -> tuple[float, ...]:
    """A recorded ``test_doses`` entry as one dose per atom of ``condition`` (a number: every atom at it)."""
    if isinstance(w, str) and "+" in w:
        return tuple(float(p) for p in w.split("+"))
    return (float(w),) * len(condition.split(data.schema.combo_delimiter))


def _listed(which: Sequence[float | str]) -> str:
    return ", ".join(w if isinstance(w, str) else dose_text(w) for w in which)


def _dose_text_list(doses: Sequence[tuple[float, ...]]) -> str:
    return ", ".join(_dose_text(d) for d in doses)


def _no_training_hint(data: PerturbationData, kind: str) -> str:
    """What to change when a split trains on no perturbed cell: with one perturbed condition, held out by a split of
    conditions, no ``test_frac`` helps (Kang's control vs stimulated was told "lower test_frac")."""
    perturbed = sorted(set(data.conditions[~data.is_control]))
    if len(perturbed) != 1 or kind not in ("random_conditions", "unseen_single"):
        return "lower test_frac"
    contexts = sorted(set(data.contexts[~data.is_control]))
    if len(contexts) > 1:
        return (f"the data has one perturbed condition ({perturbed[0]!r}), so a split of conditions holds out all of it; hold out "
                f"contexts instead: split={{'kind': 'held_out_context', 'test_contexts': [{contexts[0]!r}]}} (contexts: "
                f"{first_of(contexts, 10, render=repr, enclosed=True)})")
    return (f"the data has one perturbed condition ({perturbed[0]!r}) in one context, so there is nothing to hold out and train "
            "on both: a split needs two perturbed conditions, or two contexts (held_out_context)")


def make_split(
    data: PerturbationData,
    kind: str = "random_conditions",
    seed: int = 0,
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    holdout_controls: float = 0.0,
    holdout_singles: float = 0.0,
    test_conditions: Sequence[str] | None = None,
    test_contexts: Sequence[str] | None = None,
    test_batches: Sequence[str] | None = None,
    test_groups: Sequence[tuple[str, str]] | None = None,
    test_doses: str | float | Sequence[float | str] | None = None,
) -> Split:
    """Make a split of ``kind`` (one of ``SPLIT_KINDS``), deterministic under ``seed``.

    Test cells are the perturbed cells of the held-out conditions / contexts / pairs / batches.
    Validation cells are a stratified ``val_frac`` of the remaining perturbed cells of every group
    (in-distribution validation). Control cells stay in training (they are the input of a
    prediction) except a ``holdout_controls`` fraction of each (context, batch) group's controls,
    held out of training and shared between test (the larger half) and val.

    Those two picks shuffle each group's cells taken in the order of their names (``data.cell_names`` through
    ``distgen.data.groups.draw_order``), not of their rows: the same file with its rows in another order gets a split
    of the same cells (at other row indices), and a file whose rows are in name order the picks of its row order. Not
    their values: a split is tied to the cells' names and labels (``data_hash``), so the values of held-out cells, the
    layer read or the normalisation do not move it.

    ``test_doses`` (``held_out_dose`` only) says which doses of a held-out condition are held out, in each context where
    it was measured at several: ``"top"`` (the default: its highest, extrapolation), ``"interior"`` (every dose strictly
    between its lowest and highest: interpolation) or measured doses (a number or a list). Left out, the split and its
    record are those of before (no ``test_doses`` key in ``params``).
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"unknown split kind {kind!r}; available: {list(SPLIT_KINDS)}")
    for name, v in (("test_frac", test_frac), ("val_frac", val_frac), ("holdout_controls", holdout_controls), ("holdout_singles", holdout_singles)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {v}")
    for given_name, given in (("test_conditions", test_conditions), ("test_contexts", test_contexts), ("test_batches", test_batches)):
        if isinstance(given, str):  # read as its letters before ('ct2': the contexts 'c', 't', '2')
            raise InputDataError(f"{given_name} is one text, {given!r}; give a list, even of one item: [{given!r}]")
    params: dict[str, Any] = {
        "test_frac": test_frac,
        "val_frac": val_frac,
        "holdout_controls": holdout_controls,
        "holdout_singles": holdout_singles,
        "test_conditions": [_canonical(c, data) for c in test_conditions] if test_conditions is not None else None,
        "test_contexts": [_trimmed_context(c, data) for c in test_contexts] if test_contexts is not None else None,
        "test_batches": [str(b).strip() for b in test_batches] if test_batches is not None else None,
        "test_groups": [[_canonical(g[0], data), *(_trimmed_context(k, data) for k in g[1:])] for g in test_groups] if test_groups is not None else None,
    }
    if test_doses is not None:
        params["test_doses"] = held_doses(test_doses, kind)
        _check_slot_order(test_conditions, params["test_doses"], data)
    rng = np.random.default_rng(seed)
    test = _test_mask(data, kind, rng, params)
    if not test.any():
        raise InputDataError(f"split {kind!r} (seed {seed}) has an empty test set; check the held-out choice and test_frac")
    part = np.zeros(data.n_cells, dtype=np.int8)  # 0 train, 1 val, 2 test
    part[test] = 2
    ctrl = data.is_control
    names = data.cell_names
    for idx in data.groups(include_control=True).values():
        free = idx[part[idx] == 0]
        free = free[draw_order(names[free])]  # a group's cells in name order: the picks do not follow the row order
        if ctrl[idx[0]]:
            n_out = int(holdout_controls * len(free))  # held out of training in all (< len(free)): half to test, half to val
            n_test = n_out - n_out // 2
            perm = rng.permutation(free)
            part[perm[:n_test]] = 2
            part[perm[n_test:n_out]] = 1
        else:
            n_val = min(int(val_frac * len(free)), max(len(free) - 1, 0))
            part[rng.permutation(free)[:n_val]] = 1
    if not ((part == 0) & ~ctrl).any():
        raise InputDataError(f"split {kind!r} leaves no perturbed cells for training; {_no_training_hint(data, kind)}")

    def conds_of(mask: np.ndarray) -> tuple[str, ...]:
        return tuple(sorted(set(data.conditions[mask & ~ctrl])))

    groups = tuple(sorted({(str(c), str(k)) for c, k in zip(data.conditions[test & ~ctrl], data.contexts[test & ~ctrl])}))
    return Split(
        kind=kind,
        seed=seed,
        train=_as_idx(part == 0),
        val=_as_idx(part == 1),
        test=_as_idx(part == 2),
        train_conditions=conds_of(part == 0),
        val_conditions=conds_of(part == 1),
        test_conditions=conds_of(part == 2),
        test_groups=groups,
        data_hash=data.cells_hash,
        n_cells=data.n_cells,
        params=params,
    )


def _as_idx(mask: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.flatnonzero(mask).astype(np.int64))
