"""Tensor-level data types shared by every component kind: vocabularies, labels, tables, set batches.

Models and metrics never see AnnData: ``distgen.data`` turns AnnData into these small dataclasses.
Shapes: ``B`` sets per batch, ``m`` cells per set, ``G`` gene columns, ``P`` perturbation slots
(combinations of up to ``P`` atoms, padded with ``-1``), ``N`` cells in a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.wording import counted, first_of

PAD = -1  #: padding id for perturbation slots


def nothing_padded(mask: Tensor) -> bool:
    """True when every entry of a real-cell ``mask`` is True and finding out needs no device sync (a CPU mask).

    Lets set-level math skip masking work where nothing is padded. On an accelerator it answers False
    without looking (reading the mask back would stall the device more than the masking costs), so a
    caller must give the same result on either path, only faster on the unmasked one.
    """
    return mask.device.type == "cpu" and bool(mask.all())


@dataclass(frozen=True, eq=False)
class HostIds:
    """The host's copies (numpy) of a batch's ``gene_ids`` and ``labels.perturbation``, tied to the device tensors.

    A backbone that derives data-dependent shapes from the ids (the PAD-Transformer's token and edge
    lists) works them out from these copies instead of reading the device back. The copies count only for
    the very tensor objects they were made with (``current``): a batch whose ids or labels were replaced
    another way (``dataclasses.replace``, a new ``Condition``) falls back to the device tensors. They are
    numpy arrays, so that code moving a batch's tensors to a device (DDP's input scatter) leaves them on the host.
    """

    gene_ids_device: Tensor
    perturbation_device: Tensor
    gene_ids: np.ndarray  #: ``[G]`` int64
    perturbation: np.ndarray  #: ``[B, P]`` int64

    def current(self, gene_ids: Tensor, perturbation: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """The host's copies when ``gene_ids`` and ``perturbation`` are the tensors they were made with, else None."""
        if gene_ids is self.gene_ids_device and perturbation is self.perturbation_device:
            return self.gene_ids, self.perturbation
        return None

    @staticmethod
    def of(gene_ids: Tensor, perturbation: Tensor, host: HostIds | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``(gene_ids, perturbation)`` as int64 arrays on the host: the tensors' own memory when they are CPU
        tensors, else ``host``'s current copies; None when the host does not know them."""
        if gene_ids.device.type == "cpu" and perturbation.device.type == "cpu":
            return gene_ids.detach().numpy().astype(np.int64, copy=False), perturbation.detach().numpy().astype(np.int64, copy=False)
        return None if host is None else host.current(gene_ids, perturbation)


@dataclass(frozen=True)
class DataInfo:
    """Vocabularies of a dataset: what ids in tensors mean.

    Parameters
    ----------
    genes
        Names of the ``G`` gene columns, in column order.
    perturbations
        Perturbation *atoms* (single genes, drugs); a combination is a tuple of atom ids.
        Control is not an atom: a control cell has no atoms.
    contexts
        Context labels (cell type / cell line); a single ``"all"`` when the data has none.
    batches
        Batch labels (donor, plate, GEM group); a single ``"all"`` when the data has none.
    perturbation_type
        ``"genetic"`` (atoms are gene symbols) or ``"chemical"`` (atoms are drugs).
    """

    genes: tuple[str, ...]
    perturbations: tuple[str, ...]
    contexts: tuple[str, ...] = ("all",)
    batches: tuple[str, ...] = ("all",)
    perturbation_type: str = "genetic"
    control_label: str = "control"

    def __post_init__(self) -> None:
        for name in ("genes", "perturbations", "contexts", "batches"):
            vals = getattr(self, name)
            if len(set(vals)) != len(vals):
                dup = sorted({v for v in vals if vals.count(v) > 1})
                raise ValueError(f"DataInfo.{name} has duplicated entries: {first_of(dup, 5, render=repr)}")
        if self.perturbation_type not in ("genetic", "chemical"):
            raise ValueError(f"perturbation_type must be 'genetic' or 'chemical', got {self.perturbation_type!r}")

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_perturbations(self) -> int:
        return len(self.perturbations)

    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    def perturbation_index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.perturbations)}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})  # type: ignore[arg-type]


@dataclass
class ConditionLabels:
    """Condition of each of ``B`` sets (or cells): perturbation atoms, dose, context, batch.

    Attributes
    ----------
    perturbation
        ``[B, P]`` long atom ids into ``DataInfo.perturbations``, ``-1`` padded; all ``-1`` = control.
    dose
        ``[B, P]`` float dose per atom (1.0 where the data has no dose).
    context
        ``[B]`` long ids into ``DataInfo.contexts``.
    batch
        ``[B]`` long ids into ``DataInfo.batches``.
    """

    perturbation: Tensor
    dose: Tensor
    context: Tensor
    batch: Tensor

    def __post_init__(self) -> None:
        if self.perturbation.dim() != 2:
            raise ValueError(f"perturbation must be [B, P], got shape {tuple(self.perturbation.shape)}")
        if self.dose.shape != self.perturbation.shape:
            raise ValueError(f"dose {tuple(self.dose.shape)} must match perturbation {tuple(self.perturbation.shape)}")
        b = self.perturbation.shape[0]
        for name in ("context", "batch"):
            if getattr(self, name).shape != (b,):
                raise ValueError(f"{name} must be [B]=[{b}], got {tuple(getattr(self, name).shape)}")

    def __len__(self) -> int:
        return int(self.perturbation.shape[0])

    def to(self, device: torch.device | str) -> ConditionLabels:
        return ConditionLabels(*(getattr(self, f.name).to(device) for f in fields(self)))

    def index(self, idx: Tensor | slice) -> ConditionLabels:
        return ConditionLabels(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def cat(items: list[ConditionLabels]) -> ConditionLabels:
        width = max(int(x.perturbation.shape[1]) for x in items)

        def pad(t: Tensor, value: float) -> Tensor:
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

        return ConditionLabels(
            perturbation=torch.cat([pad(x.perturbation, PAD) for x in items]),
            dose=torch.cat([pad(x.dose, 0.0) for x in items]),
            context=torch.cat([x.context for x in items]),
            batch=torch.cat([x.batch for x in items]),
        )

    @property
    def is_control(self) -> Tensor:
        """``[B]`` bool, True where no atom is set."""
        return (self.perturbation < 0).all(dim=1)

    @staticmethod
    def make(
        perturbation: list[list[int]] | Tensor,
        context: list[int] | Tensor | None = None,
        batch: list[int] | Tensor | None = None,
        dose: list[list[float]] | Tensor | None = None,
    ) -> ConditionLabels:
        """Build labels from Python lists (ragged combinations are padded)."""
        if not isinstance(perturbation, Tensor):
            width = max([len(p) for p in perturbation] + [1])
            perturbation = torch.tensor([list(p) + [PAD] * (width - len(p)) for p in perturbation], dtype=torch.long)
        b = perturbation.shape[0]
        if dose is None:
            dose_t = (perturbation >= 0).float()
        elif not isinstance(dose, Tensor):
            dose_t = torch.tensor([list(d) + [0.0] * (perturbation.shape[1] - len(d)) for d in dose], dtype=torch.float32)
        else:
            dose_t = dose
        ctx = torch.zeros(b, dtype=torch.long) if context is None else torch.as_tensor(context, dtype=torch.long)
        bat = torch.zeros(b, dtype=torch.long) if batch is None else torch.as_tensor(batch, dtype=torch.long)
        return ConditionLabels(perturbation, dose_t, ctx, bat)


@dataclass
class CellTable:
    """All cells of a dataset (or split) as tensors: the unit that models ``fit`` on.

    Attributes
    ----------
    X
        ``[N, G]`` float32 expression (log-normalised unless the schema says otherwise); values of another dtype
        (float64 from numpy, float16) are converted to float32, the dtype of models, batches and checkpoints.
    labels
        Per-cell ``ConditionLabels`` (``B = N``).
    info
        Vocabularies that give the ids meaning.
    """

    X: Tensor
    labels: ConditionLabels
    info: DataInfo
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.X.dim() != 2:
            raise ValueError(f"X must be [N, G], got {tuple(self.X.shape)}")
        if self.X.dtype != torch.float32:  # float64 (torch.from_numpy of a numpy matrix) stopped training inside torch:
            self.X = self.X.to(torch.float32)  # "mat1 and mat2 must have the same dtype, but got Double and Float"
        if self.X.shape[1] != self.info.n_genes:
            raise ValueError(f"X has {self.X.shape[1]} genes but info lists {self.info.n_genes}")
        if len(self.labels) != self.X.shape[0]:
            raise ValueError(f"labels describe {counted(len(self.labels), 'cell')} but X has {self.X.shape[0]}")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def is_control(self) -> Tensor:
        return self.labels.is_control

    def subset(self, idx: Tensor) -> CellTable:
        return CellTable(self.X[idx], self.labels.index(idx), self.info, dict(self.meta))


@dataclass
class SetBatch:
    """``B`` cell sets, each of one condition, with matched control sets.

    Attributes
    ----------
    target
        ``[B, m, G]`` perturbed cells; ``target_mask`` ``[B, m]`` bool marks real (not padded) cells.
    control
        ``[B, m, G]`` control cells matched to each set; ``control_mask`` ``[B, m]``.
    labels
        Condition of each set (``ConditionLabels`` with ``B`` rows).
    gene_ids
        ``[G]`` long ids of the columns in ``DataInfo.genes`` (changes under gene subsampling).
    control_full
        Whether every control cell is real (``control_mask`` all True), as known on the host: read from
        the mask when the batch is made from CPU tensors (where reading it costs no device sync), kept
        when the batch moves to a device, None when the batch was made on a device (then whoever needs
        it reads the mask). A backbone uses it to skip its key mask without reading a device tensor.
    host_ids
        The host's copies of ``gene_ids`` and ``labels.perturbation`` (``HostIds``), made by ``to`` from a
        batch on the CPU and carried through ``select_genes`` with CPU columns; see ``host_tokens``.
    """

    target: Tensor
    target_mask: Tensor
    control: Tensor
    control_mask: Tensor
    labels: ConditionLabels
    gene_ids: Tensor
    control_full: bool | None = None
    host_ids: HostIds | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.target.dim() != 3:
            raise ValueError(f"target must be [B, m, G], got {tuple(self.target.shape)}")
        b, m, g = self.target.shape
        if self.target_mask.shape != (b, m):
            raise ValueError(f"target_mask must be [B, m]=[{b}, {m}], got {tuple(self.target_mask.shape)}")
        if self.control.dim() != 3 or self.control.shape[0] != b or self.control.shape[2] != g:
            raise ValueError(f"control must be [B, m', G]=[{b}, *, {g}], got {tuple(self.control.shape)}")
        if self.control_mask.shape != self.control.shape[:2]:
            raise ValueError(f"control_mask must be {tuple(self.control.shape[:2])}, got {tuple(self.control_mask.shape)}")
        if self.gene_ids.shape != (g,):
            raise ValueError(f"gene_ids must be [G]=[{g}], got {tuple(self.gene_ids.shape)}")
        if len(self.labels) != b:
            raise ValueError(f"labels has {counted(len(self.labels), 'row')} for {counted(b, 'set')}")
        if self.control_full is None and self.control_mask.device.type == "cpu":
            self.control_full = bool(self.control_mask.all())  # on the host: no device to wait for

    @property
    def shape(self) -> tuple[int, int, int]:
        b, m, g = self.target.shape
        return int(b), int(m), int(g)

    def host_tokens(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(gene_ids, labels.perturbation)`` as host arrays when the host knows them (no device read), else None."""
        return HostIds.of(self.gene_ids, self.labels.perturbation, self.host_ids)

    def to(self, device: torch.device | str) -> SetBatch:
        labels, gene_ids = self.labels.to(device), self.gene_ids.to(device)
        host = self.host_tokens()
        if host is not None:
            host = (host[0].copy(), host[1].copy())  # not views of tensors that may change after the move
        return replace(
            self,
            target=self.target.to(device),
            target_mask=self.target_mask.to(device),
            control=self.control.to(device),
            control_mask=self.control_mask.to(device),
            labels=labels,
            gene_ids=gene_ids,
            host_ids=None if host is None else HostIds(gene_ids, labels.perturbation, *host),
        )

    def select_genes(self, cols: Tensor) -> SetBatch:
        """Keep gene columns ``cols`` (positions into this batch's ``G``); CPU ``cols`` keep the host's copy of the ids."""
        host = self.host_tokens() if cols.device.type == "cpu" else None
        device_cols = cols.to(self.gene_ids.device)
        gene_ids = self.gene_ids[device_cols]
        return replace(self, target=self.target[..., device_cols], control=self.control[..., device_cols], gene_ids=gene_ids,
                       host_ids=None if host is None else HostIds(gene_ids, self.labels.perturbation, host[0][cols.numpy()], host[1]))


@dataclass
class LossOutput:
    """A scalar loss to minimise, its named parts and optional extras.

    ``parts`` maps a name to a detached 0-dim tensor (what the built-in losses give: no device sync in
    the training step; the trainer reads them back once per ``train.log_every`` steps, all together)
    or to a Python float (accepted as ever, converted where the trainer logs). A part whose name is not
    ``loss`` becomes the ``loss_<name>`` column of ``metrics.csv``.
    """

    loss: Tensor
    parts: dict[str, Tensor | float] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class SampleOutput:
    """Generated cells ``[B, m, G]`` and the number of function (network) evaluations used."""

    cells: Tensor
    nfe: int
    info: dict[str, Any] = field(default_factory=dict)

