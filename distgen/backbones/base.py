"""Backbone interface: the network ``(x_t, t, condition) -> like x_t``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from distgen.capabilities import BackboneCapabilities
from distgen.registry import Registry
from distgen.types import CellTable, ConditionLabels, HostIds

#: Condition fields a backbone may declare in ``requires``.
CONDITION_FIELDS = ("embedding", "control", "population", "labels")


@dataclass
class Condition:
    """What a backbone is conditioned on, for ``B`` sets.

    Attributes
    ----------
    gene_ids
        ``[G]`` ids of the columns of ``x_t`` in ``DataInfo.genes``.
    embedding
        ``[B, D]`` covariate embedding from the conditioner (null rows already substituted).
    control, control_mask
        ``[B, m, G]`` matched control cells and ``[B, m]`` mask.
    population
        ``[B, E]`` embedding of the control population by a distribution encoder.
    labels
        The raw labels (for backbones that tokenise perturbations, e.g. by gene id).
    drop
        ``[B]`` bool: condition dropped (classifier-free guidance) for these sets.
    control_full
        Whether every control cell is real (``control_mask`` all True), when known on the host
        (``SetBatch.control_full``); None: not known, read ``control_mask`` (``controls_padded``).
    host_ids
        The host's copies (numpy) of ``gene_ids`` and ``labels.perturbation`` (``SetBatch.host_ids``), valid only
        for those very tensors (``HostIds.current``); lets a backbone size its token lists without a device read.
    """

    gene_ids: Tensor
    embedding: Tensor | None = None
    control: Tensor | None = None
    control_mask: Tensor | None = None
    population: Tensor | None = None
    labels: ConditionLabels | None = None
    drop: Tensor | None = None
    control_full: bool | None = None
    host_ids: HostIds | None = None

    def host_tokens(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(gene_ids, labels.perturbation)`` as host arrays when the host knows them (no device read), else None."""
        if self.labels is None:
            return None
        return HostIds.of(self.gene_ids, self.labels.perturbation, self.host_ids)


def controls_padded(cond: Condition) -> bool:
    """Whether some control cell of ``cond`` is padding (``control_mask`` has a False).

    Answered from ``cond.control_full`` when the host knows it (a batch made on the CPU), so a
    training step on an accelerator does not wait for the device to read the mask back; otherwise
    the mask is read (one device sync).
    """
    if cond.control_mask is None:
        return False
    if cond.control_full is not None:
        return not cond.control_full
    return not bool(cond.control_mask.all())


class Backbone(nn.Module, ABC):
    """``forward(x_t [B, m, G], t [B, m], cond) -> [B, m, G]``.

    ``t`` is in [0, 1] (0 = source, 1 = data), one value per cell (set-level dynamics broadcast it).
    ``requires`` names the ``Condition`` fields that must be present; assembly fails early when a
    combination cannot provide them. What the backbone offers is in ``capabilities``
    (``BackboneCapabilities``).

    Self-conditioning is opt-in: a backbone whose built instance has
    ``capabilities.self_conditioning`` True also takes the keyword ``x_self_cond`` (same shape as
    ``x_t``: the previous estimate of the data, None for "no estimate yet"); the others never see it.
    """

    capabilities: BackboneCapabilities = BackboneCapabilities()
    requires: frozenset[str] = frozenset({"embedding"})

    @property
    def step_timesteps(self) -> int | None:
        """``T`` when the network embeds ``t`` as the discrete diffusion step ``n = T (1 - t) - 1``, else None.

        Assembly checks it against a diffusion schedule's ``timesteps``: with another ``T`` the
        network would read every noise level as a different step than the one it was trained on.
        """
        return None

    @abstractmethod
    def forward(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """``[B, m, G]`` output of the same shape as ``x_t``."""

    def prepare(self, train: CellTable) -> None:
        """Set up what the backbone derives from training cells before training (default: nothing).

        Called by ``Generator.fit`` with the training table (e.g. the PAD-Transformer builds its
        co-expression gene graph here when none was injected).
        """


#: The backbones registry: built-ins here, plugins from entry points ``distgen.backbones``.
backbones: Registry[Backbone] = Registry(
    "backbones",
    Backbone,
    {
        "cross_dit": "distgen.backbones.cross_dit:CrossDiT",
        "mlp": "distgen.backbones.mlp:MLPBackbone",
        "pad_transformer": "distgen.backbones.pad_transformer:PADTransformer",
    },
)
