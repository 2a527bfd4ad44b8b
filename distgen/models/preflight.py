"""Pre-flight check before training: can the chosen model embed every test perturbation?

A conditioner declares, per atom, whether it can embed it (``can_embed``); a model forwards that
as ``can_predict``. Given a split's test conditions this module lists which test perturbations
cannot be predicted and stops with a message that says what to use instead, e.g.
``7 of 20 test perturbations are not embeddable by onehot; use gene_vocab or provide an
embedding table``. It also checks that every test context has control cells when the model
generates from (or is conditioned on) controls, and that a model that embeds batches has seen, in
some training set, every batch it is asked to predict.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from distgen.capabilities import resolve
from distgen.config import ConfigError
from distgen.errors import DistgenWarning
from distgen.registry import registry
from distgen.types import CellTable, DataInfo
from distgen.wording import counted, first_of, listing, quoted


class PreflightError(ConfigError):
    """The model cannot predict part of the test set; raised before any training."""


class PreflightWarning(DistgenWarning):
    """A held-out atom a trained model cannot embed, run anyway (``allow_unembedded``), or a fitted model's fallback."""


@dataclass(frozen=True)
class PreflightReport:
    """Which test conditions a model can predict.

    Attributes
    ----------
    component
        Registered name of what decides (the conditioner of a generator, else the model).
    conditions
        Test conditions (canonical strings, control excluded).
    embeddable
        Per condition: every atom of it can be embedded.
    missing_atoms
        Atoms that cannot be embedded, sorted.
    hint
        What to use instead (empty when nothing is missing).
    """

    component: str
    conditions: tuple[str, ...]
    embeddable: tuple[bool, ...]
    missing_atoms: tuple[str, ...]
    hint: str = ""
    problems: tuple[str, ...] = field(default=())

    @property
    def n_missing(self) -> int:
        return sum(not e for e in self.embeddable)

    @property
    def ok(self) -> bool:
        return self.n_missing == 0 and not self.problems

    @property
    def not_embeddable(self) -> tuple[str, ...]:
        return tuple(c for c, e in zip(self.conditions, self.embeddable) if not e)

    def message(self, show: int = 8) -> str:
        """One paragraph a user can act on (empty when ``ok``)."""
        parts = []
        if self.n_missing:
            shown = first_of(self.missing_atoms, show, render=quoted, enclosed=True)
            parts.append(
                f"{self.n_missing} of {counted(len(self.conditions), 'test perturbation')} {'is' if self.n_missing == 1 else 'are'} not "
                f"embeddable by {self.component}; "
                f"{self.hint} (atoms without an embedding: {shown})"
            )
        return "; ".join(parts + list(self.problems))

    def raise_if_failed(self) -> PreflightReport:
        if not self.ok:
            raise PreflightError(self.message())
        return self


def registered_name(obj: Any, kind: str) -> str:
    """The registry name of ``obj``'s class in ``kind`` (its class name if unregistered)."""
    reg = registry(kind)
    for name in reg.names():
        try:
            if reg.get(name) is type(obj):
                return name
        except Exception:  # a broken plugin must not hide the answer
            continue
    return type(obj).__name__


def deciders(model: Any) -> list[tuple[Any, str]]:
    """The parts of ``model`` that must embed a perturbation, with their registered names.

    A backbone that tokenises perturbations itself (``embeds_perturbations``, e.g. the
    PAD-Transformer) decides, together with the conditioner when the backbone also reads the
    conditioner's embedding; otherwise the conditioner decides; a model without either answers
    through ``can_predict``.
    """
    bb = getattr(model, "backbone", None)
    cond = getattr(model, "conditioner", None)
    if bb is not None and getattr(resolve(bb), "embeds_perturbations", False) and hasattr(bb, "can_embed"):
        out = [(bb, registered_name(bb, "backbones"))]
        if cond is not None and "embedding" in getattr(bb, "requires", ()):
            out.append((cond, registered_name(cond, "conditioners")))
        return out
    if cond is not None and hasattr(cond, "can_embed"):
        return [(cond, registered_name(cond, "conditioners"))]
    if hasattr(model, "can_embed"):
        return [(model, registered_name(model, "conditioners"))]
    from distgen.models.generator import Generator

    if hasattr(model, "can_predict") and not isinstance(model, Generator):  # a Generator's can_predict asks its parts (here: none)
        return [(model, registered_name(model, "models"))]
    raise TypeError(f"preflight: no part of {type(model).__name__} tells which perturbations it embeds (can_embed or can_predict)")


def embeddable(model: Any, atoms: Sequence[str]) -> list[bool]:
    """Per atom: can every deciding part of ``model`` embed it?"""
    atoms = list(atoms)
    out = [True] * len(atoms)
    for obj, _ in deciders(model):
        can = obj.can_embed(atoms) if hasattr(obj, "can_embed") else obj.can_predict(atoms)
        out = [a and bool(b) for a, b in zip(out, can)]
    return out


def _hint(name: str, obj: Any, missing: Sequence[str], genes: Sequence[str]) -> str:
    folded = {g.upper() for g in genes}
    all_genes = not genes or all(a.upper() in folded for a in missing)  # unknown vocabulary: assume genes
    if name == "gene_vocab" and all_genes:
        return (
            "gene_vocab embeds genes never perturbed in training only when it shares the gene-token table of the backbone "
            "(use a backbone with gene tokens, e.g. pad_transformer), or provide an embedding table (embedding_table)"
        )
    if all_genes:
        return "use gene_vocab or provide an embedding table"
    return "provide an embedding table (embedding_table) that covers them"


def conditions_of(test: Any, delimiter: str = "+", control_label: str = "control") -> list[str]:
    """Condition strings from a ``Split`` (``test_conditions``), a ``CellTable`` or a list of strings."""
    if isinstance(test, CellTable):
        atoms = test.info.perturbations
        seen: dict[str, None] = {}
        for row in test.labels.perturbation.tolist():
            ids = [i for i in row if i >= 0]
            if ids:
                seen.setdefault(delimiter.join(atoms[i] for i in ids))
        return list(seen)
    conds = getattr(test, "test_conditions", test)
    if isinstance(conds, str) or not isinstance(conds, Sequence):
        raise TypeError(f"preflight: expected a Split, a CellTable or a list of condition strings, got {type(test).__name__}")
    return [c for c in conds if c != control_label]


def preflight(
    model: Any,
    test: Any,
    *,
    delimiter: str = "+",
    control_label: str = "control",
    control_contexts: Sequence[str] | None = None,
    test_contexts: Sequence[str] | None = None,
    info: DataInfo | None = None,
    strict: bool = True,
) -> PreflightReport:
    """Check that ``model`` can predict every test condition of ``test``; raise ``PreflightError`` if not.

    Parameters
    ----------
    model
        A built model (a generator's conditioner decides), a conditioner, or any model with ``can_predict``.
    test
        A ``Split`` (its ``test_conditions``), a ``CellTable`` of test cells, or condition strings (``"A+B"``).
    delimiter, control_label
        How combinations are written, and the control condition (skipped).
    control_contexts, test_contexts
        Contexts that have control cells and contexts to predict in; when both are given and the
        model needs control cells, every test context must have controls.
    info
        Vocabularies (for the advice: are the missing atoms genes?); defaults to ``model.info``.
    strict
        Raise when anything is missing (otherwise return the report).
    """
    parts = deciders(model)
    name = " + ".join(n for _, n in parts)
    obj = parts[0][0]
    conds = conditions_of(test, delimiter, control_label)
    atom_lists = [c.split(delimiter) for c in conds]
    atoms = sorted({a for al in atom_lists for a in al})
    ok = dict(zip(atoms, embeddable(model, atoms)))
    per_condition = tuple(all(ok[a] for a in al) for al in atom_lists)
    missing = tuple(a for a in atoms if not ok[a])
    info = info or getattr(model, "info", None)
    genes = info.genes if info is not None else getattr(obj, "genes", ())
    problems: list[str] = []
    if test_contexts is None and hasattr(test, "test_groups"):
        test_contexts = sorted({ctx for _, ctx in test.test_groups})
    needs_controls = bool(getattr(resolve(model), "needs_control_cells", False))
    if needs_controls and control_contexts is not None and test_contexts is not None:
        lacking = sorted(set(test_contexts) - set(control_contexts))
        if lacking:
            problems.append(
                f"{type(model).__name__} generates from control cells but test context(s) {lacking} have none; "
                "add control cells for them or hold out a different context"
            )
    report = PreflightReport(name, tuple(conds), per_condition, missing, _hint(name, obj, missing, genes) if missing else "", tuple(problems))
    return report.raise_if_failed() if strict else report


#: The option that lets a run go ahead when held-out atoms cannot be embedded (``preflight:`` config section).
ALLOW_OPTION = "preflight.allow_unembedded"

#: ``DataInfo`` vocabularies whose order gives meaning to tensors: gene columns and label ids.
VOCABULARIES = ("genes", "perturbations", "contexts", "batches")


def vocabulary_differences(model_info: DataInfo, info: DataInfo) -> list[str]:
    """How ``info`` differs from the vocabularies a model was built for (empty when they agree)."""
    out = []
    for name in VOCABULARIES:
        ours, theirs = getattr(model_info, name), getattr(info, name)
        if ours == theirs:
            continue
        if set(ours) == set(theirs):
            out.append(f"{name}: the same {len(ours)} in another order")
            continue
        ours_set, theirs_set = set(ours), set(theirs)
        extra, missing = [v for v in theirs if v not in ours_set], [v for v in ours if v not in theirs_set]
        parts = ([f"{len(extra)} unknown to the model ({first_of(extra, 3, render=repr, enclosed=True)})"] if extra else []) + (
            [f"{len(missing)} of the model's missing here ({first_of(missing, 3, render=repr, enclosed=True)})"] if missing else [])
        out.append(f"{name}: {', '.join(parts) or 'another order'}")
    for name in ("perturbation_type", "control_label"):
        if getattr(model_info, name) != getattr(info, name):
            out.append(f"{name}: {getattr(model_info, name)!r} for the model, {getattr(info, name)!r} here")
    return out


def check_vocabulary(model: Any, info: DataInfo, doing: str) -> None:
    """Refuse to ``doing`` (``"predict"``, ``"fit"``) ``model`` on data whose vocabularies are not the ones it was built for.

    A model reads gene columns by position and labels as ids into its ``DataInfo``: on data with the
    same genes in another order, or other atoms, contexts or batches, every column and id would be
    read against the wrong name, silently. Models that record no ``info`` (a baseline not yet fitted)
    are not checked.
    """
    built = getattr(model, "info", None)
    if not isinstance(built, DataInfo) or built == info:
        return
    diff = vocabulary_differences(built, info)
    if not diff:
        return
    raise ConfigError(
        f"{doing}: {type(model).__name__} was built (or fitted) for other data than this one ({'; '.join(diff)}); its gene "
        "columns and label ids would be read against the wrong names. Use the data it was built for: load the same file "
        "with the same data: section (genes in the same order: adata[:, genes]), or build and train a model for this data"
    )


def check_split(model: Any, dataset: Any, part: str = "test", allow_unembedded: bool = False, asked: bool = False) -> list[str]:
    """Pre-flight of ``model`` against the held-out conditions of a ``distgen.data.Dataset``, before any compute.

    ``check_prediction`` for the held-out conditions of ``part`` and the contexts and batches of its perturbed cells:
    every held-out condition is checked against the parts of the model that embed perturbations (``preflight``), and a
    trained model whose conditioner holds a learned row per context or batch is held to the same rule for the contexts and
    batches of the held-out cells (``untrained_rows``: e.g. a ``held_out_context`` cell type or a ``held_out_batch`` batch
    trained without its control sets). Contexts without control cells always stop the run. ``asked``: the groups are asked
    at other doses than their cells' (``ignored_doses``). Returns the warnings and notes (empty when all is well).
    """
    split = dataset.split
    conditions = {"train": split.train_conditions, "val": split.val_conditions, "test": split.test_conditions}.get(part)
    if conditions is None:
        raise ConfigError(f"split part must be train, val or test, got {part!r}")
    data = dataset.data
    if getattr(data, "dosed", False):  # populations at their doses (dex@10): the model embeds their atoms
        conditions = list(dict.fromkeys(data.base_condition(c) for c in conditions))
    groups = split.test_groups if part == "test" else None
    idx = dataset.indices(part)
    held = idx[~data.is_control[idx]]
    return check_prediction(
        model, dataset, list(conditions), delimiter=data.schema.combo_delimiter,
        contexts=sorted(set(data.contexts[held].tolist())), batches=sorted(set(data.batches[held].tolist())),
        control_contexts=sorted(set(data.contexts[data.is_control].tolist())),
        test_contexts=sorted({ctx for _, ctx in groups}) if groups else None, allow_unembedded=allow_unembedded) + ignored_doses(
            model, dataset, asked, allow_unembedded)


def ignored_doses(model: Any, dataset: Any, asked: bool = False, allow_unembedded: bool = False) -> list[str]:
    """One note when the training cells of ``dataset`` carry doses other than 1 (``schema.dose_col``), or other doses are
    ``asked`` (``doses=``, ``--dose``), and no conditioner of ``model`` reads doses (``distgen.conditioners.dose.dose_blind``):
    each atom would be one condition whatever its dose, and a group asked at its own dose predicted as at any other.
    Empty otherwise. Data holding conditions at several doses (``PerturbationData.dosed``: a population per dose) is a
    ``ConfigError`` for such a model unless ``allow_unembedded`` (then the note says so)."""
    column = dataset.data.schema.dose_col
    if column is None:
        return []
    notes = dose_blind_note(model, column, dataset.dose_record().ranges, "the training cells", asked)
    several = dataset.dose_record().several if getattr(dataset.data, "dosed", False) else {}
    if notes and several:  # a population per dose: a dose-blind model predicts one population for all of them
        return several_doses_refusal(column, several, "the data", allow_unembedded)
    return notes


#: The conditioners that read doses, as the dose refusals and notes name them (``distgen.conditioners.dose``).
DOSE_READERS = ("onehot, gene_vocab or embedding_table with dose: linear, log or learned; onehot reads linear by default, and doses "
                "spread over decades want log: 'model.conditioner={name: onehot, dose: log}' on the command line")


def several_doses_refusal(column: str, several: Mapping[tuple[tuple[str, ...], str], Sequence[tuple[float, ...]]], whose: str,
                          allow_unembedded: bool = False) -> list[str]:
    """For a model that reads no dose, given data at several doses per condition (``several``: ``DoseRecord.several``): a
    ``ConfigError`` (it would predict one population for every dose of a condition) naming the fix, or with
    ``allow_unembedded`` the same words as a note."""
    (atoms, ctx), ds = next(iter(sorted(several.items())))
    text = (f"dose_col {column!r}: {whose} holds conditions at several doses, each a population of its own scored on its own "
            f"({counted(len(several), '(condition, context) pair')}, e.g. {'+'.join(atoms)} in {ctx} at "
            f"{first_of(['+'.join(f'{x:g}' for x in d) for d in ds], 5, render=quoted, enclosed=True)}), but no part of this model that embeds perturbations "
            "reads doses, so it would predict one population for every dose of a condition. Use a conditioner that reads doses "
            f"({DOSE_READERS}), or leave "
            f"data.schema.dose_col unset to pool the doses; {ALLOW_OPTION}=true runs it anyway")
    if not allow_unembedded:
        raise ConfigError(text)
    return [text]


def dose_blind_note(model: Any, column: str | None, ranges: Mapping[str, tuple[float, float]], whose: str,
                    asked: bool = False) -> list[str]:
    """``ignored_doses``'s note for cells whose atoms carry the doses ``ranges`` (``{atom: (lowest, highest)}``, read off
    ``whose``: the training cells, or the cells of a file to predict); ``asked``: other doses are asked too."""
    from distgen.conditioners.dose import dose_blind

    if column is None:
        return []
    dosed = {a: r for a, r in ranges.items() if r != (1.0, 1.0)}
    blind = dose_blind(model) if dosed or asked else None
    if not blind:
        return []
    shown = first_of([f"{a} {r[0]:g}" + (f" to {r[1]:g}" if r[1] != r[0] else "") for a, r in sorted(dosed.items())], 4, render=quoted, enclosed=True)
    carry = f"{whose} carry doses ({shown})" if dosed else f"{whose} carry dose 1 only"
    also = ", and other doses are asked (doses=, --dose)" if asked else ""
    return [f"dose_col {column!r}: {carry}{also}, but no part of this model that embeds perturbations reads them "
            f"({listing(blind)}): an atom is one condition to it at every dose, so the doses change no prediction. Use a "
            f"model whose conditioner reads them ({DOSE_READERS}), or leave data.schema.dose_col unset"]


def check_prediction(
    model: Any,
    dataset: Any,
    conditions: Sequence[str],
    *,
    contexts: Sequence[str] = (),
    batches: Sequence[str] = (),
    delimiter: str = "+",
    control_contexts: Sequence[str] | None = None,
    test_contexts: Sequence[str] | None = None,
    allow_unembedded: bool = False,
    leave_out: str = "",
) -> list[str]:
    """The embed rule of every prediction of a run's model: its split (``check_split``) and another file's cells
    (``distgen predict RUN --data FILE``).

    ``conditions`` (atoms joined by ``delimiter``) are checked against the parts of ``model`` that embed perturbations
    (``preflight``); ``contexts`` and ``batches`` (those of the perturbed cells to predict) against the rows of a
    conditioner that holds a learned row per context or batch (``untrained_of``: one no training set of ``dataset``
    carries). A trained model (``TrainableModel``) that would predict from an untrained row stops here with
    ``PreflightError`` (``leave_out``: how else to leave those cells out, added to the fix), unless
    ``allow_unembedded``: then the problem comes back as a warning to record. A model that fits itself (a baseline, a
    plugin model) has a defined fallback for atoms it cannot predict: that comes back as a note (check it once fitted: its
    ``can_predict`` knows what it learnt only then). ``control_contexts`` and ``test_contexts``, when both are given:
    a context to predict without control cells always stops. Returns the warnings and notes (empty when all is well).

    ``dataset`` is the run's ``Dataset``, or its ``DataRecord`` (``--data`` without the training file): only its ``info``,
    ``training_contexts()``, ``training_batches()`` and training controls (``training_controls``) are read.
    """
    from distgen.models.base import is_trainable

    report = preflight(model, list(conditions), delimiter=delimiter, control_label=dataset.info.control_label,
                       control_contexts=control_contexts, test_contexts=test_contexts, info=dataset.info, strict=False)
    trainable = is_trainable(model)
    asked = {"context": contexts, "batch": batches}
    untrained = {kind: untrained_of(model, dataset, kind, asked[kind]) if trainable else [] for kind in ROW_KINDS}
    if report.ok and not any(untrained.values()):
        return []
    if report.problems:
        raise PreflightError("; ".join(report.problems))
    if not trainable:
        atoms = first_of(report.missing_atoms, 8, render=quoted, enclosed=True)
        return [f"pre-flight: {type(model).__name__} cannot predict {report.n_missing} of "
                f"{counted(len(report.conditions), 'held-out perturbation')} (atoms {atoms}); it predicts them with its fallback"]
    messages = [report.message()] if report.n_missing else []
    messages += [_rows_message(model, dataset, kind, names) for kind, names in untrained.items() if names]
    if not allow_unembedded:
        raise PreflightError(
            f"{'; '.join(messages)}. Their embeddings would never be trained, so their predictions would mean nothing"
            f"{leave_out}. To run anyway, set {ALLOW_OPTION}=true (the report will carry a warning)"
        )
    out = []
    if report.n_missing:
        out.append(f"WARNING pre-flight: {report.message()}; run anyway because {ALLOW_OPTION} is true: predictions of "
                   f"{first_of(report.not_embeddable, 8, render=quoted)} come from untrained embeddings")
    for kind, names in untrained.items():
        if names:
            out.append(f"WARNING pre-flight: {_rows_message(model, dataset, kind, names)}; run anyway because {ALLOW_OPTION} is true: "
                       f"the cells of {ROW_KINDS[kind].some} {_shown(names)} come from untrained {kind} embeddings")
    return out


class RowKind(NamedTuple):
    """A covariate a conditioner may hold a learned row for: the capability that says so, the option that switches it off."""

    capability: str
    option: str
    some: str  # "context(s)"
    plural: str


#: The covariates whose untrained rows the pre-flight refuses.
ROW_KINDS = {"context": RowKind("embeds_contexts", "use_context", "context(s)", "contexts"),
             "batch": RowKind("embeds_batches", "use_batch", "batch(es)", "batches")}


def untrained_rows(model: Any, dataset: Any, kind: str, part: str = "test") -> list[str]:
    """Contexts or batches (``kind``) of the held-out perturbed cells of ``part`` that ``model`` embeds but no training set
    carries (``untrained_of``)."""
    data, idx = dataset.data, dataset.indices(part)
    column = data.contexts if kind == "context" else data.batches
    return untrained_of(model, dataset, kind, column[idx[~data.is_control[idx]]].tolist())


def untrained_of(model: Any, dataset: Any, kind: str, names: Sequence[str]) -> list[str]:
    """Of the contexts or batches (``kind``) ``names``, those ``model`` embeds but no training set of ``dataset`` carries, sorted.

    Only a model whose conditioner holds a learned row per context or batch
    (``ConditionerCapabilities.embeds_contexts`` / ``embeds_batches``) has such rows; a context or batch is
    trained when some training set carries it (``Dataset.training_contexts`` / ``training_batches``): a
    ``held_out_context`` cell type or a ``held_out_batch`` batch with ``data.control_sets: none`` is not, nor a
    cell type of control cells only.
    """
    capability = ROW_KINDS[kind].capability
    vocabulary = dataset.info.contexts if kind == "context" else dataset.info.batches
    if len(vocabulary) < 2 or not names or not getattr(resolve(getattr(model, "conditioner", None)), capability, False):
        return []
    trained = dataset.training_contexts() if kind == "context" else dataset.training_batches()
    return sorted(set(names) - set(trained))


def untrained_batches(model: Any, dataset: Any, part: str = "test") -> list[str]:
    """``untrained_rows`` for batches."""
    return untrained_rows(model, dataset, "batch", part)


def untrained_contexts(model: Any, dataset: Any, part: str = "test") -> list[str]:
    """``untrained_rows`` for contexts (cell types)."""
    return untrained_rows(model, dataset, "context", part)


def _shown(names: Sequence[str]) -> str:
    return first_of(names, 8, render=quoted)


def training_controls(dataset: Any, kind: str) -> list[str]:
    """The contexts or batches (``kind``) of the training control cells of ``dataset``: a ``Dataset``, or a run's
    ``distgen.data.record.DataRecord``, which answers itself (``training_controls``) without the cells."""
    own = getattr(dataset, "training_controls", None)
    if callable(own):
        return list(own(kind))
    data = dataset.data
    train = dataset.split.train.numpy()
    column = data.contexts if kind == "context" else data.batches
    return sorted(set(column[train[data.is_control[train]]].tolist()))


def _rows_message(model: Any, dataset: Any, kind: str, names: Sequence[str]) -> str:
    has_controls = set(names) <= set(training_controls(dataset, kind))
    sets = "; or train them on control -> control sets of their training controls (data.control_sets=auto)" if has_controls else ""
    row = ROW_KINDS[kind]
    table = ("; or read contexts from frozen vectors (model.conditioner.context_table)"
             if kind == "context" and "context_table" in inspect.signature(type(model.conditioner)).parameters else "")
    return (f"{len(names)} held-out {row.some} ({_shown(names)}) are in no training set, so the {kind} embedding of "
            f"{registered_name(model.conditioner, 'conditioners')} has untrained rows for them; "
            f"ignore {row.plural} with model.conditioner.{row.option}=false{sets}{table}")

#: Ids of the models whose prediction runs inside a pipeline pre-flight's scope (``preflight_checked``).
_CHECKED: ContextVar[tuple[int, ...]] = ContextVar("distgen_preflight_checked", default=())


@contextmanager
def preflight_checked(model: Any) -> Iterator[None]:
    """Within: ``model``'s held-out atoms were checked (``check_split``) and the ones it cannot predict named, once.

    ``distgen.predict`` wraps its generation in it, so that a model that also says so itself on ``predict`` (the
    distgen-bayes plugin's unseen-atom warning, for direct calls) can leave it to the pre-flight
    (``checked_by_preflight``): the same fact was printed twice on a first call.
    """
    token = _CHECKED.set((*_CHECKED.get(), id(model)))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def checked_by_preflight(model: Any) -> bool:
    """Whether ``model`` predicts within ``preflight_checked(model)``: a pre-flight has named what it cannot predict."""
    return id(model) in _CHECKED.get()


__all__ = [
    "ALLOW_OPTION",
    "ROW_KINDS",
    "PreflightError",
    "PreflightReport",
    "PreflightWarning",
    "RowKind",
    "check_prediction",
    "check_split",
    "checked_by_preflight",
    "conditions_of",
    "deciders",
    "embeddable",
    "preflight",
    "preflight_checked",
    "registered_name",
    "training_controls",
    "untrained_batches",
    "untrained_contexts",
    "untrained_of",
    "untrained_rows",
]
