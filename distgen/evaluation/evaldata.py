"""The tensors an evaluation sees: real and predicted cells grouped by perturbation, plus shared caches.

``EvalData`` is what every metric receives (``Metric.compute(data) -> MetricResult``). It holds no
AnnData: ``distgen.evaluation.io`` builds it at the edge. Cells of one file are stored grouped by
perturbation (``Population``), so a perturbation's cells are a slice, and pseudobulk means and the
differential-expression tables are computed once and shared by all metrics through ``cache``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.wording import counted


@dataclass
class Population:
    """One file's cells: ``X [N, G]`` grouped by perturbation, and its control cells ``[n_c, G]``.

    ``offsets [P + 1]``: the cells of perturbation ``p`` are ``X[offsets[p]:offsets[p + 1]]``.
    ``totals`` / ``control_totals``: ``[N]`` / ``[n_c]`` float64 sums of each row of ``X`` / ``control`` when known (raw
    counts summed once by ``io.eval_data`` for the limit on a cell's total and read again as library sizes by
    ``de.normalize_total`` and ``ranksums.normalised_rank_sums``); None: summed where needed. A population built with
    other rows than those summed gets None.
    """

    X: Tensor
    offsets: Tensor
    control: Tensor
    totals: Tensor | None = None
    control_totals: Tensor | None = None

    @staticmethod
    def from_codes(X: Tensor, codes: Tensor, n_perts: int, totals: Tensor | None = None) -> Population:
        """Group ``X [N, G]`` by ``codes [N]`` (``-1`` = control, ``0..P-1`` = perturbation).

        Rows already grouped (the controls in one block at the start or the end, the perturbed rows by nondecreasing
        code: ``io.grouped`` cells, a baseline's references) are not copied: ``X`` and ``control`` are then slices of
        a contiguous ``X`` (the very values the copy would hold, in the same order), so the caller's table is the only one.
        ``totals [N]``: each row's sum, grouped with the rows (``Population.totals``, ``control_totals``).
        """
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.shape != (X.shape[0],):
            raise ValueError(f"codes must be [N]=[{X.shape[0]}], got {tuple(codes.shape)}")
        if X.is_contiguous() and (blocks := _grouped_blocks(codes)) is not None:  # contiguous: its slices sum as a copy would
            (c0, c1), (p0, p1) = blocks
            counts = torch.bincount(codes[p0:p1], minlength=n_perts)
            offsets = torch.zeros(n_perts + 1, dtype=torch.long, device=X.device)
            offsets[1:] = torch.cumsum(counts, 0)
            return Population(X=X[p0:p1], offsets=offsets, control=X[c0:c1], totals=None if totals is None else totals[p0:p1],
                              control_totals=None if totals is None else totals[c0:c1])
        order = torch.argsort(codes, stable=True)
        counts = torch.bincount(codes[codes >= 0], minlength=n_perts)
        offsets = torch.zeros(n_perts + 1, dtype=torch.long, device=X.device)
        offsets[1:] = torch.cumsum(counts, 0)
        pert_rows = order[codes[order] >= 0]
        ctrl_rows = (codes == -1).nonzero().flatten()
        sums = {} if totals is None else {"totals": totals[pert_rows.to(totals.device)], "control_totals": totals[ctrl_rows.to(totals.device)]}
        if X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64) and not X.requires_grad:  # numpy's row gather: ~10x torch's on one CPU thread
            x = X.numpy()
            return Population(X=torch.from_numpy(x.take(pert_rows.numpy(), axis=0)), offsets=offsets,
                              control=torch.from_numpy(x.take(ctrl_rows.numpy(), axis=0)), **sums)
        return Population(X=X[pert_rows], offsets=offsets, control=X[ctrl_rows], **sums)

    @property
    def n_perts(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def counts(self) -> Tensor:
        """``[P]`` cells per perturbation."""
        return self.offsets[1:] - self.offsets[:-1]

    def cells(self, p: int) -> Tensor:
        """``[n_p, G]`` cells of perturbation ``p``."""
        return self.X[int(self.offsets[p]) : int(self.offsets[p + 1])]

    def codes(self) -> Tensor:
        """``[N]`` perturbation index of each row of ``X``."""
        return torch.repeat_interleave(torch.arange(self.n_perts, device=self.offsets.device), self.counts)

    def means(self) -> Tensor:
        """``[P, G]`` float64 pseudobulk means (NaN rows for perturbations without cells)."""
        sums = segment_sums(self.X, self.offsets)
        return sums / self.counts[:, None].to(sums)


def _grouped_blocks(codes: Tensor) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((c0, c1), (p0, p1))``: the control rows ``c0:c1`` and the perturbed rows ``p0:p1`` of ``codes [N]`` when the
    controls are one block at the start or the end and the perturbed codes never decrease (what a stable sort by code
    would leave in place); None otherwise."""
    n = int(codes.numel())
    n_ctrl = int((codes == -1).sum())
    if n_ctrl == 0 or bool((codes < -1).any()):
        return None
    for (c0, c1), (p0, p1) in (((0, n_ctrl), (n_ctrl, n)), ((n - n_ctrl, n), (0, n - n_ctrl))):
        pert = codes[p0:p1]
        if bool((codes[c0:c1] == -1).all()) and bool((pert >= 0).all()) and bool((pert[1:] >= pert[:-1]).all()):
            return (c0, c1), (p0, p1)
    return None


def segment_sums(x: Tensor, offsets: Tensor) -> Tensor:
    """``[P, G]`` float64 sums of the row blocks ``x[offsets[p]:offsets[p + 1]]`` of ``x [N, G]``.

    Rows are added in order, in float64, as ``index_add_`` of ``x.to(float64)`` adds them (the same
    numbers, bit for bit); on the CPU through numpy, block by block, without a float64 copy of ``x``.
    """
    n_perts = int(offsets.numel() - 1)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        out = np.zeros((n_perts, x.shape[1]))
        xn, bounds = x.numpy(), offsets.tolist()
        for p in range(n_perts):
            if bounds[p + 1] > bounds[p]:
                xn[bounds[p] : bounds[p + 1]].sum(0, dtype=np.float64, out=out[p])
        return torch.from_numpy(out)
    codes = torch.repeat_interleave(torch.arange(n_perts, device=offsets.device), offsets[1:] - offsets[:-1])
    sums = torch.zeros(n_perts, x.shape[1], dtype=torch.float64, device=x.device)
    return sums.index_add_(0, codes.to(x.device), x.to(torch.float64))


def _holds_arrays(value: Any, depth: int = 4) -> bool:
    """Whether ``value`` is or contains (through containers and dataclass fields) a tensor or an array."""
    if isinstance(value, Tensor | np.ndarray):
        return True
    if isinstance(value, str | bytes | int | float | bool | type(None)):
        return False
    if depth == 0:
        return True  # too deep to tell: treat as computed
    if isinstance(value, dict):
        return any(_holds_arrays(v, depth - 1) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_arrays(v, depth - 1) for v in value)
    if is_dataclass(value):
        return any(_holds_arrays(getattr(value, f.name), depth - 1) for f in fields(value))
    return True  # an unknown object may hold arrays: recompute it


@dataclass
class EvalData:
    """Predicted and real cells of ``P`` perturbations over ``G`` genes (same gene order).

    Attributes
    ----------
    real, pred
        The two files' cells, grouped by the same perturbation index.
    perts
        ``P`` perturbation labels (control excluded); ``targets[p]`` their target atoms.
    genes
        ``G`` gene names.
    invalid
        Perturbation index -> reason; every metric reports NaN for these (never a silent number).
    cache
        Shared results (means, DE tables), keyed by name.
    """

    real: Population
    pred: Population
    perts: tuple[str, ...]
    targets: tuple[tuple[str, ...], ...]
    genes: tuple[str, ...]
    invalid: dict[int, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = len(self.perts)
        if self.real.n_perts != p or self.pred.n_perts != p:
            raise ValueError(f"real has {self.real.n_perts} and pred {counted(self.pred.n_perts, 'perturbation group')}; expected {p}")
        if len(self.targets) != p:
            raise ValueError(f"targets lists {counted(len(self.targets), 'entry', 'entries')} for {counted(p, 'perturbation')}")
        for name, pop in (("real", self.real), ("pred", self.pred)):
            if pop.X.shape[1] != len(self.genes) or pop.control.shape[1] != len(self.genes):
                raise ValueError(f"{name} cells have {pop.X.shape[1]} genes but {len(self.genes)} gene names were given")
            if pop.control.shape[0] == 0:
                raise ValueError(f"{name} has no control cells: every evaluation needs control cells in both files")

    @property
    def n_perts(self) -> int:
        return len(self.perts)

    def to(self, device: torch.device | str) -> EvalData:
        """The same cells on ``device`` (e.g. ``"cuda"``): labels, invalid groups and metadata kept, cached results dropped.

        Cached tensors (means, DE tables) live on the old device, so they are recomputed where the cells are;
        plain cache entries (the value scale, group order, flags set at load) are kept.
        """
        def move(pop: Population) -> Population:
            return Population(X=pop.X.to(device), offsets=pop.offsets.to(device), control=pop.control.to(device))

        meta = {k: v for k, v in self.cache.items() if not _holds_arrays(v)}
        return EvalData(real=move(self.real), pred=move(self.pred), perts=self.perts, targets=self.targets, genes=self.genes,
                        invalid=dict(self.invalid), cache=meta)

    def population(self, which: str) -> Population:
        if which not in ("real", "pred"):
            raise ValueError(f"which must be 'real' or 'pred', got {which!r}")
        return self.real if which == "real" else self.pred

    def cached(self, key: str, fn: Any) -> Any:
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    def means(self, which: str) -> Tensor:
        """``[P, G]`` float64 pseudobulk means of ``which`` (``"real"`` or ``"pred"``)."""
        return self.cached(f"means/{which}", lambda: self.population(which).means())

    def control_mean(self, which: str) -> Tensor:
        """``[G]`` float64 mean of ``which``'s control cells."""
        return self.cached(f"control_mean/{which}", lambda: self.population(which).control.to(torch.float64).mean(0))

    def delta(self, which: str, control: str = "own") -> Tensor:
        """``[P, G]`` perturbation effect: means minus a control mean.

        ``control="own"`` takes each file's own controls (cell-eval's convention: the predicted
        delta is against the prediction file's controls); ``control="real"`` takes the real
        controls for both (the convention of scGen/CPA-style evaluations).
        """
        if control not in ("own", "real"):
            raise ValueError(f"control must be 'own' or 'real', got {control!r}")
        return self.means(which) - self.control_mean(which if control == "own" else "real")

    def target_mask(self, mode: str = "atoms") -> Tensor:
        """``[P, G]`` bool, True where gene ``g`` is a target of perturbation ``p`` (to be excluded).

        ``mode="atoms"``: every atom of the perturbation; ``"label"``: a gene named exactly as the
        perturbation label (cell-eval's rule; nothing for combinations); ``"none"``: nothing.
        """
        if mode not in ("atoms", "label", "none"):
            raise ValueError(f"exclude mode must be 'atoms', 'label' or 'none', got {mode!r}")
        index = {g: i for i, g in enumerate(self.genes)}
        mask = torch.zeros(self.n_perts, len(self.genes), dtype=torch.bool, device=self.real.X.device)
        for p, (label, atoms) in enumerate(zip(self.perts, self.targets)):
            names: Sequence[str] = () if mode == "none" else ((label,) if mode == "label" else atoms)
            for a in names:
                if a in index:
                    mask[p, index[a]] = True
        return mask

    @staticmethod
    def from_single(pred: Tensor, real: Tensor, control_pred: Tensor, control_real: Tensor, name: str = "pert",
                    targets: tuple[str, ...] = (), genes: Sequence[str] = ()) -> EvalData:
        """One perturbation: ``pred [n, G]``, ``real [m, G]`` and each side's controls."""
        g = real.shape[1]
        genes = tuple(genes) or tuple(f"g{i}" for i in range(g))
        one = torch.tensor([0, 0])

        def pop(x: Tensor, c: Tensor) -> Population:
            return Population(X=x, offsets=one.clone().index_fill_(0, torch.tensor([1]), x.shape[0]), control=c)

        return EvalData(real=pop(real, control_real), pred=pop(pred, control_pred), perts=(name,), targets=(tuple(targets),), genes=genes)
