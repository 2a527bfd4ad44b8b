"""Anchors: what a generator's dynamics model the cells relative to (a residual parametrisation).

``"none"``: the cells themselves. ``"control_mean"``: each set's cells minus the mean of its
control set (masked), added back after sampling; the network then learns the response and the
spread around the control population, and the control population's profile (e.g. an unseen cell
type's) reaches the output exactly instead of through the network. ``"additive"``: the control mean
plus the sum of the condition's per-atom effects fitted on the training singles (the additive
baseline's mean); the network learns what the additive model misses (an interaction, the spread).
The control mean is each set's own (``reference="set"``) or the mean of all training control cells
of the set's context (``"training"``: free of the sampling noise of a small control set).

``Anchor`` is the module a ``Generator`` holds: it owns the state an anchor fits on the training
cells (``fit``; saved with the weights) and computes the anchor of a batch of control sets.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgen import errors
from distgen.types import CellTable, ConditionLabels, DataInfo
from distgen.wording import counted, first_of

ANCHORS = ("none", "control_mean", "additive")
#: Which control mean an anchor starts from: each set's own, or the training control cells' of its context.
ANCHOR_REFERENCES = ("set", "training")


def control_mean(control: Tensor, mask: Tensor | None) -> Tensor:
    """``[B, 1, G]`` mean of the real cells of each control set ``[B, m, G]`` (mask ``[B, m]``)."""
    if mask is None:
        return control.mean(1, keepdim=True)
    w = mask.to(control.dtype)[..., None]
    return (control * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)


def summed_effects(effects: Tensor, perturbation: Tensor) -> Tensor:
    """``[B, G]``: per row of ``perturbation`` (``[B, P]`` atom ids, ``-1`` padded) the sum of its atoms' rows of ``effects [A, G]``."""
    real = (perturbation >= 0).to(effects.dtype)[..., None]
    return (effects[perturbation.clamp_min(0)] * real).sum(1)


def _fitted(flags: Tensor, missing: str) -> Tensor:
    """``flags`` (per-row "fitted" state of ``Anchor.fit``), refused when nothing was fitted yet."""
    if not bool(flags.any()):
        raise RuntimeError(f"{missing}: call prepare(train) on the training cells before training or predicting "
                           "(distgen.train.fit does), or load a checkpoint of a trained run")
    return flags


class Anchor(nn.Module):
    """The anchor of kind ``kind`` starting from the control mean ``reference``, for data ``info``.

    State (buffers, registered only where the kind needs them, fitted by ``fit`` and saved with the
    weights): ``effects [A, G]`` / ``fitted [A]`` (``"additive"``: each atom's effect alone in the
    training cells, and whether it was seen alone) and ``control [C, G]`` / ``control_fitted [C]``
    (``reference="training"``: each context's training control mean, and whether it has controls).
    ``forward`` takes input-scaled control sets and returns the input-scaled anchor. Validation of
    ``kind`` and ``reference`` against the rest of a model is ``Generator``'s assembly check.
    """

    effects: Tensor
    fitted: Tensor
    control: Tensor
    control_fitted: Tensor

    def __init__(self, info: DataInfo, kind: str = "none", reference: str = "set") -> None:
        super().__init__()
        self.info = info
        self.kind = kind
        self.reference = reference
        if kind == "additive":
            self.register_buffer("effects", torch.zeros(info.n_perturbations, info.n_genes))
            self.register_buffer("fitted", torch.zeros(info.n_perturbations, dtype=torch.bool))
        if self.uses_training_controls:
            self.register_buffer("control", torch.zeros(len(info.contexts), info.n_genes))
            self.register_buffer("control_fitted", torch.zeros(len(info.contexts), dtype=torch.bool))

    @property
    def uses_training_controls(self) -> bool:
        """Whether the anchor starts from the training control means (state to fit) rather than each set's."""
        return self.kind != "none" and self.reference == "training"

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, reference={self.reference!r}"

    # ------------------------------------------------------------------ fitting
    def fit(self, train: CellTable) -> None:
        """Fit the state of this kind and reference on the training cells (nothing for ``none`` / ``control_mean`` with ``set``)."""
        if self.kind == "additive":
            self._fit_effects(train)
        if self.uses_training_controls:
            self._fit_control(train)

    def _fit_effects(self, train: CellTable) -> None:
        """Each atom's effect alone in ``train`` (the additive baseline's), into ``effects``."""
        from distgen.models.baselines.additive import AdditiveBaseline

        if train.info.perturbations != self.info.perturbations or train.info.genes != self.info.genes:
            raise ValueError("anchor 'additive': the training cells' perturbation atoms or genes differ from the ones the model "
                             "was built for; build the model from the training data's DataInfo")
        singles = AdditiveBaseline().fit(train).singles
        if not singles:
            raise ValueError("anchor 'additive' needs single perturbations (one atom, with control cells of the same context) "
                             "in the training cells to fit per-atom effects from; these have none. Use anchor: control_mean")
        self._store(self.effects, self.fitted, singles)

    def _fit_control(self, train: CellTable) -> None:
        """Each context's mean of the training control cells, into ``control``."""
        from distgen.models.baselines.effects import context_control_means

        if train.info.contexts != self.info.contexts or train.info.genes != self.info.genes:
            raise ValueError("anchor_reference 'training': the training cells' contexts or genes differ from the ones the model was "
                             "built for; build the model from the training data's DataInfo")
        by_context = context_control_means(train)
        if not by_context:
            raise ValueError("anchor_reference 'training' needs control cells in the training cells to take each context's control "
                             "mean from; these have none. Use anchor_reference: set")
        self._store(self.control, self.control_fitted, by_context)

    @staticmethod
    def _store(values: Tensor, flags: Tensor, rows: dict[int, Tensor]) -> None:
        """Write ``{row: [G] value}`` into ``values`` (other rows zero) and mark them in ``flags``."""
        new = torch.zeros_like(values)
        marked = torch.zeros_like(flags)
        for i, row in rows.items():
            new[i] = row.to(new.dtype)
            marked[i] = True
        values.copy_(new)
        flags.copy_(marked)

    # ------------------------------------------------------------------ the anchor of a batch
    def forward(self, control: Tensor, mask: Tensor, labels: ConditionLabels, genes: Tensor, scale: float,
                warn: bool = False) -> Tensor | None:
        """``[B, 1, P]`` anchor of control sets ``[B, m, P]`` (input-scaled by ``scale``) on gene ids ``genes [P]``; None for ``none``.

        ``warn``: say which atoms (contexts) have no fitted effect (control mean) and fall back.
        """
        if self.kind == "none":
            return None
        start = self._start(control, mask, labels, genes, scale, warn)
        if self.kind != "additive":
            return start
        fitted = _fitted(self.fitted, "anchor 'additive' has no per-atom effects")
        pert = labels.perturbation.to(control.device)
        if warn:
            used = pert[pert >= 0].unique()
            missing = [self.info.perturbations[int(a)] for a in used if not bool(fitted[a])]
            if missing:
                errors.warn(f"anchor 'additive': {counted(len(missing), 'atom')} ({first_of(missing, 5, render=repr, enclosed=True)}) "
                            f"{'was' if len(missing) == 1 else 'were'} never seen alone in training; "
                            f"{'it adds' if len(missing) == 1 else 'they add'} no effect to the anchor, so "
                            f"{'its' if len(missing) == 1 else 'their'} response comes from the network alone")
        effects = self.effects[:, genes.to(self.effects.device).long()] * scale
        return start + summed_effects(effects.to(control.dtype), pert)[:, None, :]

    def _start(self, control: Tensor, mask: Tensor, labels: ConditionLabels, genes: Tensor, scale: float, warn: bool) -> Tensor:
        """``[B, 1, P]``: the control mean the anchor starts from (``reference``), on ``genes``, input-scaled."""
        own = control_mean(control, mask)
        if not self.uses_training_controls:
            return own
        fitted = _fitted(self.control_fitted, "anchor_reference 'training' has no control means")
        ctx = labels.context.to(fitted.device).long()
        have = fitted[ctx]
        if warn and not bool(have.all()):
            missing = sorted({self.info.contexts[int(c)] for c in ctx[~have]})
            errors.warn(f"anchor_reference 'training': {counted(len(missing), 'context')} ({first_of(missing, 5, render=repr, enclosed=True)}) "
                        f"{'has' if len(missing) == 1 else 'have'} no control cells in training; "
                        f"{'its' if len(missing) == 1 else 'their'} anchor starts from each set's own control mean instead")
        ref = self.control[ctx][:, genes.to(fitted.device).long()].to(control.dtype)[:, None, :] * scale
        return torch.where(have.to(control.device)[:, None, None], ref.to(control.device), own)


__all__ = ["ANCHORS", "ANCHOR_REFERENCES", "Anchor", "control_mean", "summed_effects"]
