"""References: the baselines' predictions of the held-out groups, made from the same data as the model's.

Each baseline (``control``, ``mean_perturbation``, ``noncontrol_mean``, ``additive``, ``linear`` by
default, ``matching_mean`` on request: any registered ``FittedModel``) is fitted on the training cells *with their contexts and batches* (the same
``CellTable`` the model was trained on) and predicts every (condition, context, batch) group of the
truth from the truth's control cells of the group's own context and batch (of its context when its
batch has none there), the same pool the model generated from (``Dataset.groups``).
``distgen.evaluation.score`` then scores these references next to the model.

A closed-form baseline shifts the control cells it is given, so each group gets ``n`` real control
cells of its pool: ``control_draw``'s, the very cells a generated prediction of the group starts from
(distinct while the pool lasts, seeded by the group's labels, taken in the order of the cells' values, so a truth
file's row order does not change them). Its prediction then carries the real
spread of the controls, and a model and a baseline differ only by what they do with the same cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from distgen.data.conditions import parse_dose_label
from distgen.data.groups import draw_order
from distgen.data.prepared import Dataset, control_draw
from distgen.errors import InputDataError, warn
from distgen.evaluation.io import check_scale, label_note
from distgen.models import models
from distgen.models.base import FittedModel, checked_prediction
from distgen.models.baselines.effects import is_dosed
from distgen.seeds import content_keys
from distgen.types import COMBO, Cells, CellTable, ConditionLabels, DataInfo, IndexedCells, labels_in, vocabulary
from distgen.wording import counted, first_of

#: Baselines scored by default (``control`` needs no training cells; the others do): the references a 2026
#: paper must report (``noncontrol_mean``: Systema's mean of all perturbed cells). ``matching_mean`` is opt-in.
DEFAULT_BASELINES = ("control", "mean_perturbation", "noncontrol_mean", "additive", "linear")
#: Every registered baseline model and its role: a negative reference (what a model must beat).
#: The positive reference is the ceiling (``distgen.evaluation.calibration``).
BASELINE_ROLES = {name: "negative" for name in (*DEFAULT_BASELINES, "matching_mean")}

#: ``labels(conditions, contexts, batches)``: group labels as the model's ``ConditionLabels``.
Labeller = Callable[[list[str], list[str], list[str]], ConditionLabels]


def control_rows(truth: Cells, context: str, batch: str) -> np.ndarray:
    """``[n]`` rows of ``truth`` that are its control cells of ``context`` and ``batch``, or of ``context`` when ``batch`` has none
    there, in ``draw_order`` (by their values, as a prediction's pool), so ``control_draw`` picks the same cells whatever the
    row order of the truth file."""
    own = truth.is_control & (truth.contexts == context)
    mine = own & (truth.batches == batch)
    rows = np.flatnonzero(mine if mine.any() else own)
    x = truth.X[torch.from_numpy(rows)]
    return rows[draw_order(content_keys(x, truth.genes))]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` hold the same numbers bit for bit (dtype and shape too; ``-0.0`` is not ``0.0``, a NaN is itself)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(a.element_size())
        if view is None:
            return False
        a, b = a.view(view), b.view(view)
    return bool(torch.equal(a, b))


@torch.no_grad()
def reference_cells(model: Any, truth: Cells, labels: Labeller) -> Cells:
    """A fitted baseline's prediction of every (condition, context, batch) group of ``truth``, followed by ``truth``'s controls.

    Each group is predicted from the controls ``control_draw`` gives it: those a generated prediction of the
    group starts from (``distgen.pipeline.predict``), cell for cell. A baseline that predicts every group as those very
    cells (``control``: bit for bit) gives ``IndexedCells``: rows of the truth's table, gathered only while they are scored
    (a table of the truth's size held beside it before); any other, one table filled group by group.
    """
    conds, ctxs, bats = [], [], []
    plan = []  # (condition, context, batch, cells): the groups in their order, sized first so the table is filled in place
    for (cond, ctx), rows in truth.groups(by_context=True).items():
        for bat in sorted(set(truth.batches[rows].tolist())):
            plan.append((cond, ctx, bat, int((truth.batches[rows] == bat).sum())))
    ctrl_rows = np.flatnonzero(truth.is_control)
    n_pred = sum(n for *_, n in plan)
    table: torch.Tensor | None = None  # made at the first group predicted as other cells than its controls
    picked: list[np.ndarray] = []  # the truth's rows of the groups so far, while each was predicted as its controls
    pools: dict[tuple[str, str], tuple[np.ndarray, torch.Tensor]] = {}
    start = 0
    for cond, ctx, bat, n in plan:
        if (ctx, bat) not in pools:
            rows = control_rows(truth, ctx, bat)
            pools[(ctx, bat)] = rows, truth.X[torch.from_numpy(rows)]
        rows, pool = pools[(ctx, bat)]
        if pool.shape[0] == 0:
            raise InputDataError(f"the truth has no control cells of context {ctx!r} to predict {cond!r} from")
        pick = control_draw(pool.shape[0], n, cond, ctx, bat)
        control = pool[torch.from_numpy(pick)][None]
        pred = checked_prediction(model, model.predict(control, torch.ones(1, n, dtype=torch.bool), labels([cond], [ctx], [bat])), control)
        out = pred[0].to(truth.X.dtype)
        if table is None and same_bits(out, control[0]):
            picked.append(rows[pick])
        else:
            if table is None:  # one table, written group by group (a list of groups and their concatenation held two)
                table = torch.empty(n_pred + len(ctrl_rows), truth.X.shape[1], dtype=truth.X.dtype, device=truth.X.device)
                done = torch.from_numpy(np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)).to(truth.X.device)
                torch.index_select(truth.X, 0, done, out=table[:start])
            table[start : start + n] = out
        start += n
        conds += [cond] * n
        ctxs += [ctx] * n
        bats += [bat] * n
    conds, ctxs, bats = conds + truth.conditions[ctrl_rows].tolist(), ctxs + truth.contexts[ctrl_rows].tolist(), bats + truth.batches[ctrl_rows].tolist()
    if table is None:
        return IndexedCells(truth.X, np.concatenate([*picked, ctrl_rows]), conds, truth.genes, ctxs, bats, truth.control)
    torch.index_select(truth.X, 0, torch.from_numpy(ctrl_rows).to(truth.X.device), out=table[n_pred:])
    return Cells(table, conds, truth.genes, ctxs, bats, truth.control)


def _baseline(name: str) -> FittedModel:
    """The baseline ``name`` built with its defaults (validated like a config node; a plugin's gets its cheap checks)."""
    from distgen.config import ConfigError, build_component

    cls = models.get(name)
    if not (isinstance(cls, type) and issubclass(cls, FittedModel)):
        raise ConfigError(f"baseline {name!r} is not a FittedModel (fit(train) -> self): references are fitted in closed form "
                          "on the training cells; a trained model is compared as a run of its own (distgen compare)")
    if (problem := baseline_problem(name)) is not None:
        raise ConfigError(problem)
    try:
        model = build_component("models", {"name": name})
    except ConfigError as err:
        raise ConfigError(_defaults_failed(name, err)) from None
    return model  # type: ignore[no-any-return]


def baseline_problem(name: str) -> str | None:
    """Why baseline ``name`` (a registered FittedModel) cannot be built with its defaults, None when it can: the
    pre-flight's check (``pipeline.checks.config_problems``), before training, and ``_baseline``'s. A baseline is built
    from its name alone, so a parameter a model's node gets filled in from the data (``info``...) is one it lacks."""
    from distgen.config import ConfigError, validate_params

    try:
        validate_params(models.get(name), {}, "models", injected=frozenset())
    except ConfigError as err:
        return _defaults_failed(name, err)
    return None


def _defaults_failed(name: str, err: Exception) -> str:
    """The refusal of baseline ``name`` whose constructor refused its defaults with ``err``."""
    return (f"baseline {name!r} is built with its defaults (evaluate.baselines and --baselines take names, not nodes), "
            f"which failed: {err} A baseline cannot be given parameters: give each of them a default (or register a "
            "subclass with them fixed).")


def fit_references(
    train: CellTable | None, truth: Cells, labels: Labeller, names: Sequence[str] = DEFAULT_BASELINES,
    atoms: Callable[[str], Sequence[str]] | None = None,
) -> tuple[dict[str, Cells], list[str]]:
    """Fit each baseline of ``names`` on ``train`` and predict ``truth``'s groups: ``({name: Cells}, notes)``.

    Without training cells only baselines that need none (``control``) are scored; the notes say so. ``atoms(condition)``
    names a condition's atoms in ``train``'s vocabulary (``truth.atoms``, or the atoms of ``atom@dose`` labels).
    """
    refs: dict[str, Cells] = {}
    notes: list[str] = []
    fitted: dict[str, FittedModel] = {}
    for name in names:
        model = _baseline(name)
        if name != "control":
            if train is None:
                notes.append(f"baseline {name!r} not scored: it is fitted on training cells; pass --train TRAIN.h5ad")
                continue
            model.fit(train)
            fitted[name] = model
        refs[name] = reference_cells(model, truth, labels)
    if train is not None and is_dosed(train):
        notes += dose_rule_notes(fitted)
    conditions = sorted(set(truth.conditions[~truth.is_control].tolist()))
    asked = sorted({a for c in conditions for a in (atoms or truth.atoms)(c)})
    for name, model in fitted.items():
        unseen = [a for a, ok in zip(asked, model.can_predict(asked)) if not ok]
        if unseen:
            notes.append(f"baseline {name!r} cannot predict atoms {first_of(unseen, 8, render=repr)} (uses its fallback)")
    return refs, notes


def dose_rule_notes(fitted: dict[str, FittedModel]) -> list[str]:
    """One note per baseline fitted on data at several doses (``docs/data.md``, "Doses"): how it predicts a population at a
    dose, its ``dose_rule`` (``additive``: its atoms' effects at the nearest training dose; ``mean_perturbation``: dose-blind),
    or that it declares none (a plugin's): the report never presents a dose-blind reference without saying so."""
    return [f"baseline {name!r} on data at several doses: "
            + (getattr(model, "dose_rule", None) or "declares no dose_rule, so how it reads doses is not known (it may be dose-blind)")
            for name, model in fitted.items()]


def dataset_references(dataset: Dataset, truth: Cells, names: Sequence[str] = DEFAULT_BASELINES) -> tuple[dict[str, Cells], list[str]]:
    """References of a run: baselines fitted on the dataset's training cells (contexts and batches kept)."""
    return fit_references(dataset.train_table, truth, dataset.labels, names)


def _row_keys(x: torch.Tensor) -> list[bytes]:
    """One key per row of ``x [N, G]``: its values as float32 bytes (equal rows, equal keys)."""
    arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    return [row.tobytes() for row in arr]


def check_held_out_not_in_training(train: Cells, truth: Cells) -> None:
    """Refuse training cells that hold some of the truth's perturbed cells (a ``LeakageError``, exit 2 on the command line).

    A baseline fitted on them would have seen the cells it is scored on (``distgen evaluate --train`` given the whole
    dataset rather than its training cells). A perturbed truth cell is found in ``train`` when a training cell has its whole
    expression vector (on the truth's genes, not all zero) and, when both sides have cell names, its name too (on a small
    gene panel two different cells can share their values). Control cells may be shared: the truth's controls are the
    cells predictions start from, training controls unless the split held some out.
    """
    pert = truth.X[torch.from_numpy(np.flatnonzero(~truth.is_control))]
    keep = (pert != 0).any(1).numpy()
    if not keep.any() or len(train) == 0:
        return
    named = truth.names is not None and train.names is not None
    seen = set(zip(_row_keys(train.X), train.names.astype(str).tolist() if named else [""] * len(train)))  # type: ignore[union-attr]
    rows = np.flatnonzero(keep)
    names = truth.names[~truth.is_control][rows].astype(str).tolist() if named else [""] * len(rows)  # type: ignore[index]
    hit = rows[[key in seen for key in zip(_row_keys(pert[torch.from_numpy(rows)]), names)]]
    if hit.size:
        names = truth.names[~truth.is_control][hit[:3]].tolist() if truth.names is not None else []
        conds = sorted(set(truth.conditions[~truth.is_control][hit].tolist()))
        from distgen.data.split import LeakageError

        raise LeakageError(
            f"{hit.size} of the truth's {int((~truth.is_control).sum())} perturbed cells are also in the training cells "
            f"(identical expression{', e.g. ' + ', '.join(map(str, names)) if names else ''}; conditions {first_of(conds, 5, render=repr, enclosed=True)}"
            "): baselines fitted on them would have seen the cells they are scored on. "
            "Pass only the training cells (a run's split.json train part; distgen.load_data(...).train_cells()), not the whole dataset"
        )


def population_doses(truth: Cells, train: Cells | None) -> dict[str, tuple[tuple[str, ...], tuple[float, ...]]] | None:
    """``{label: (atoms, doses)}`` when every perturbed label of ``truth`` and ``train`` is a population at a dose, ``atom@dose``
    (``dexa@10``, ``dexa@10+saha@100``: what distgen writes for data at several doses, ``docs/data.md`` "Doses"), so the
    baselines of ``distgen evaluate --train`` fit on the atoms at their doses; None otherwise (each label its own atoms)."""
    out: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
    for cells in (truth, train):
        if cells is None:
            continue
        for c in set(cells.conditions[~cells.is_control].tolist()):
            parsed = parse_dose_label(c, COMBO)
            if parsed is None:
                return None
            out[c] = parsed
    return out or None


def cells_references(
    train: Cells | None, truth: Cells, names: Sequence[str] = DEFAULT_BASELINES,
) -> tuple[dict[str, Cells], list[str]]:
    """References from training cells given as ``Cells`` (``distgen evaluate --train``), contexts kept.

    The vocabulary covers the training and the evaluated atoms, so a baseline can be asked about an
    atom it never saw (it answers with its fallback); only training cells are fitted on.
    """
    if train is not None:
        trained = set(train.genes)
        missing = [g for g in truth.genes if g not in trained]
        if missing:
            raise InputDataError(f"the training cells lack {counted(len(missing), 'evaluated gene')} "
                                 f"({first_of(missing, 5, render=repr, enclosed=True)}); baselines need every gene")
        train = train.with_genes(truth.genes)
        check_scale(train.X, "training")
        if not train.is_control.any():
            raise InputDataError(f"the training cells have no control cells labelled {train.control!r}; baselines need them")
        train = train.relabel_control(truth.control)
        check_held_out_not_in_training(train, truth)
    dosed = population_doses(truth, train)
    info: DataInfo = vocabulary([truth] if train is None else [train, truth])
    if dosed is not None:  # atom@dose labels: the atoms are the drugs, each population at its dose
        drugs = tuple(sorted({a for atoms, _ in dosed.values() for a in atoms}))
        info = dataclasses.replace(info, perturbations=drugs, perturbation_type="genetic" if set(drugs) & set(truth.genes) else "chemical")
    table = None
    if train is not None and dosed is not None:
        parsed = [dosed[c] if c != train.control else ((), ()) for c in train.conditions.tolist()]
        table = CellTable(train.X.to(torch.float32), labels_in(info, [a for a, _ in parsed], train.contexts.tolist(), train.batches.tolist(),
                                                               [d for _, d in parsed]), info, {"dosed": True})
    elif train is not None:
        table = train.to_table(info)

    def atoms_of(condition: str) -> Sequence[str]:
        return dosed[condition][0] if dosed is not None and condition in dosed else truth.atoms(condition)

    def labels(conditions: list[str], contexts: list[str], batches: list[str]) -> ConditionLabels:
        if dosed is not None:
            return labels_in(info, [atoms_of(c) for c in conditions], contexts, batches,
                             [dosed[c][1] if c in dosed else () for c in conditions])
        return labels_in(info, [truth.atoms(c) for c in conditions], contexts, batches)

    refs, notes = fit_references(table, truth, labels, names, atoms_of)
    if train is not None and dosed is None and population_doses(truth, None) is not None:
        notes.append("the truth's labels carry doses (atom@dose) but some of the training file's do not: the baselines read each "
                     "truth label as an atom of its own and predict it from their fallbacks; give the training file its dose "
                     "column (dose, dose_val, dose_value) or atom@dose labels")
    if train is not None:  # training atoms that are the truth's spelled another way ('a' for 'A'): the baselines never matched them
        trained = {a for c in set(train.conditions[~train.is_control].tolist()) for a in (atoms_of if dosed else train.atoms)(c)}
        evaluated = sorted({a for c in set(truth.conditions[~truth.is_control].tolist()) for a in atoms_of(c)})
        unseen = sorted(trained - set(evaluated))
        if (hint := label_note(unseen, [a for a in evaluated if a not in trained], "training file")) is not None:
            notes.append(f"the training file's perturbations are not the truth's: {hint}")
            warn(f"evaluate: the training file's perturbation labels differ from the truth's in spelling, so the baselines fitted on "
                 f"it predict the truth's perturbations from their fallbacks: {hint}")
    return refs, notes
