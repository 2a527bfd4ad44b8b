"""The predict contract every model answers, and the two ways a model learns.

``PerturbationModel``: ``predict(control, control_mask, labels) -> cells`` (counterfactual
generation). A model learns in exactly one of two declared ways, told by its type:

* ``FittedModel``: fits itself from training cells, ``fit(train: CellTable) -> self`` (closed-form
  baselines, models with their own inference such as the Bayesian plugin);
* ``TrainableModel``: trained by distgen's trainer, ``loss(SetBatch) -> LossOutput`` (and optional
  ``prepare(train)``), e.g. the assembled generator.

``distgen.train.fit(model, data, ...)`` trains either kind; nothing here imports the trainer.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.registry import Registry
from distgen.types import CellTable, ConditionLabels, LossOutput, SetBatch


class PerturbationModel(ABC):
    """``predict(control, control_mask, labels) -> cells``: counterfactual generation.

    Given ``control [B, m, G]`` cells (mask ``[B, m]``) and the condition of each of the ``B``
    sets, return ``[B, m, G]`` cells as they would look under that condition. Reconstruction of
    observed cells is a different verb. A concrete model is a ``FittedModel`` or a ``TrainableModel``.

    Capabilities: ``supports_unseen_perturbations`` (can predict atoms absent from training),
    ``needs_control_cells`` (uses the supplied controls), ``output_kind`` (``"cells"``).
    """

    capabilities: ModelCapabilities = ModelCapabilities()

    @abstractmethod
    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        """``[B, m, G]`` predicted cells for ``B`` conditions from ``[B, m, G]`` control cells."""

    def can_predict(self, atoms: list[str]) -> list[bool]:
        """Per perturbation atom: can this model predict conditions containing it?"""
        return [True] * len(atoms)


class FittedModel(PerturbationModel):
    """A model that fits itself: ``fit(train) -> self`` (closed form, or its own inference).

    A ``diagnostics`` attribute that is a non-empty mapping of plain values after ``fit`` (a loss trace,
    convergence statistics) is written by ``distgen run`` to the run's ``fit.json``.
    """

    @abstractmethod
    def fit(self, train: CellTable) -> FittedModel:
        """Learn from training cells (perturbed and control); returns ``self``.

        Keyword parameters after ``train`` (``fit(self, train, steps: int = 100)``) are the keys of a
        config's ``fit:`` section; a key no registered fitted model takes is refused
        (``distgen.train.loop.fit_option_problems``). A ``**kwargs`` catch-all takes any key, and the
        model then says what it ignores.
        """


class TrainableModel(PerturbationModel):
    """A model trained by distgen's trainer (``distgen.train.fit``); it must also be a ``torch.nn.Module``."""

    @abstractmethod
    def loss(self, batch: SetBatch) -> LossOutput:
        """The training loss of a set batch."""

    def prepare(self, train: CellTable) -> None:
        """Set up what the model derives from training cells before training (nothing by default)."""

    def min_set_size(self) -> tuple[int, str]:
        """``(fewest real cells per training set its loss needs, why)``; training refuses a smaller ``data.set_size``
        before any step. Default: one cell."""
        return 1, ""


def checked_prediction(model: object, out: Any, control: Tensor) -> Tensor:
    """``out`` as a tensor when it is what ``predict`` promises (the shape of ``control``, ``[B, m, G]``), else an error
    naming the model, its plugin and the fix (a plugin returning ``[B, G]`` means failed later in a reshape or a concat)."""
    if not isinstance(out, Tensor) and hasattr(out, "__array__"):
        import torch

        out = torch.as_tensor(out)
    if isinstance(out, Tensor) and tuple(out.shape) == tuple(control.shape):
        return out
    got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
    problem = (f"predict(control {tuple(control.shape)}, control_mask, labels) returned {got}, expected a tensor of "
               f"shape {tuple(control.shape)}: one predicted cell per control cell, [B, m, G]")
    plugin = models.plugin_of(model)
    if plugin is None:
        raise TypeError(f"model {type(model).__qualname__}: {problem}")
    from distgen.registry import PluginCheckError

    raise PluginCheckError(f"models component {plugin}: {problem}. Fix the plugin (its tests should subclass "
                           "distgen.testing.ModelContract), or use another model.")


def is_trainable(model: type | object) -> bool:
    """True when a model class (or instance) is trained by distgen's trainer, as it declares by type."""
    cls = model if isinstance(model, type) else type(model)
    return issubclass(cls, TrainableModel)


_UNTRAINED = "_distgen_untrained"


def mark_untrained(model: object) -> None:
    """Mark a model ``distgen.build`` just made with initial weights: ``distgen.predict`` warns until it is trained or loaded.

    ``distgen.train``'s trainer (``mark_trained``) and any ``load_state_dict`` (``distgen.load_run``, a user's own
    weights) take the mark off; models built elsewhere never carry it.
    """
    import torch.nn as nn

    if isinstance(model, nn.Module):
        setattr(model, _UNTRAINED, True)
        model.register_load_state_dict_post_hook(lambda module, _keys: mark_trained(module))


def mark_trained(model: object) -> None:
    """Take ``mark_untrained``'s mark off ``model`` (it was trained or given weights)."""
    if getattr(model, _UNTRAINED, False):
        setattr(model, _UNTRAINED, False)


def is_untrained(model: object) -> bool:
    """True for a model ``distgen.build`` made that was neither trained nor given weights since (``mark_untrained``)."""
    return bool(getattr(model, _UNTRAINED, False))


_BUILT_FROM = "_distgen_built_from"


@dataclass(frozen=True)
class BuildRecord:
    """What ``distgen.build`` made a model from: its ``model:`` node as given (``node``; defaults filled when it is
    resolved) and the embedding-table files it read (``tables``: ``distgen.conditioners.table_record.TableRecord``).
    ``distgen.fit(..., run_dir=)`` writes a whole run folder from it (``config.yaml`` with this node), which
    ``distgen.load_run`` reads back."""

    node: Mapping[str, Any]
    tables: tuple[Any, ...] = ()


def record_build(model: object, node: Mapping[str, Any], tables: Sequence[Any] = ()) -> None:
    """Keep on ``model`` the node ``distgen.build`` made it from (a deep copy: later edits of the config do not reach it)."""
    setattr(model, _BUILT_FROM, BuildRecord(copy.deepcopy(dict(node)), tuple(tables)))


def built_from(model: object) -> BuildRecord | None:
    """The ``BuildRecord`` of a model ``distgen.build`` made; None for a model built any other way."""
    record = getattr(model, _BUILT_FROM, None)
    return record if isinstance(record, BuildRecord) else None


#: The models registry: built-ins here, plugins from entry points ``distgen.models``.
models: Registry[PerturbationModel] = Registry(
    "models",
    PerturbationModel,
    {
        "additive": "distgen.models.baselines.additive:AdditiveBaseline",
        "control": "distgen.models.baselines.control:ControlBaseline",
        "generator": "distgen.models.generator:Generator",
        "linear": "distgen.models.baselines.linear:LinearBaseline",
        "matching_mean": "distgen.models.baselines.matching_mean:MatchingMeanBaseline",
        "mean_perturbation": "distgen.models.baselines.mean_perturbation:MeanPerturbationBaseline",
        "noncontrol_mean": "distgen.models.baselines.noncontrol_mean:NonControlMeanBaseline",
    },
)
