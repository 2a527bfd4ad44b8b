"""One-hot conditioner: a learned vector per seen perturbation atom, context and batch."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from distgen.capabilities import ConditionerCapabilities
from distgen.conditioners.base import Conditioner, pool_slots
from distgen.conditioners.dose import DoseEncoding
from distgen.types import ConditionLabels, DataInfo


class OneHotConditioner(Conditioner):
    """Learned embedding per perturbation atom (pooled over combinations) + context + batch.

    Equivalent to a linear map of one-hot codes. It can embed only atoms seen in training:
    an unseen atom's row never receives a gradient.

    Parameters
    ----------
    info
        Dataset vocabularies (injected at assembly).
    seen_perturbations
        Atoms present in the training split (injected); None means all atoms of ``info``.
    dim
        Output dimension.
    pool
        ``"sum"`` or ``"mean"`` over the atoms of a combination.
    use_context, use_batch
        Add a learned context / batch embedding.
    dose, dose_scale
        How an atom's dose scales its vector (``distgen.conditioners.dose``): ``linear`` (default: times the dose),
        ``log`` (times ``log1p(dose / dose_scale)``: doses spread over decades, sci-Plex's 10-10,000 nM), ``learned``
        (a Hill curve per atom) or ``none`` (dose-blind).
    """

    capabilities = ConditionerCapabilities(embeds_batches=None, embeds_contexts=None, reads_dose=None)  # use_batch, use_context, dose

    def __init__(
        self,
        info: DataInfo,
        seen_perturbations: Sequence[str] | None = None,
        dim: int = 64,
        pool: str = "sum",
        use_context: bool = True,
        use_batch: bool = False,
        dose: str = "linear",
        dose_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if pool not in ("sum", "mean"):
            raise ValueError(f"onehot: pool must be 'sum' or 'mean', got {pool!r}")
        if dim < 1:
            raise ValueError(f"onehot: dim must be >= 1, got {dim}")
        self.dim = dim
        self.pool = pool
        self.atoms = info.perturbations
        self.seen = frozenset(info.perturbations if seen_perturbations is None else seen_perturbations)
        self.pert = nn.Embedding(max(1, info.n_perturbations), dim)
        self.context = nn.Embedding(len(info.contexts), dim) if use_context else None
        self.batch = nn.Embedding(len(info.batches), dim) if use_batch else None
        self.dose = DoseEncoding(dim, dose, dose_scale, owner="onehot")  # no parameter unless learned: linear's checkpoints are as before
        self.capabilities = ConditionerCapabilities(embeds_batches=use_batch, embeds_contexts=use_context, reads_dose=dose != "none")
        nn.init.normal_(self.pert.weight, std=dim**-0.5)
        self._init_null()

    def embed(self, labels: ConditionLabels) -> Tensor:
        ids = labels.perturbation
        e = pool_slots(self.dose(self.pert(ids.clamp_min(0)), labels.dose), ids, self.pool)
        if self.context is not None:
            e = e + self.context(labels.context)
        if self.batch is not None:
            e = e + self.batch(labels.batch)
        return e

    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        return [a in self.seen for a in atoms]


__all__ = ["OneHotConditioner"]
