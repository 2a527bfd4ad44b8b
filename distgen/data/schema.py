"""``PerturbationSchema``: how an AnnData's columns map onto distgen's terms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from distgen.types.layout import PERTURBATION_TYPES

#: Control labels seen in the field (Perturb-seq, GEARS, sci-Plex, cell-eval).
COMMON_CONTROL_LABELS = ("control", "ctrl", "non-targeting", "NT", "DMSO", "vehicle", "unperturbed")
#: What the values of several context columns are joined with into one context label.
CONTEXT_SEPARATOR = "|"


@dataclass(frozen=True)
class PerturbationSchema:
    """Column mapping of a perturbation AnnData, validated by ``PerturbationData.from_anndata``.

    Parameters
    ----------
    perturbation_col
        ``obs`` column holding the perturbation label of each cell (``"A"``, ``"A+B"``, GEARS
        ``"A+ctrl"``, a control label). A tuple of columns means combinations stored in parallel
        columns (one atom per column; control labels, empty strings and NaN mark unused slots).
    control_labels
        Values that mark control cells. At least one must occur in the data.
    context_cols
        ``obs`` columns that define the context (cell type / cell line). Several are joined with
        ``"|"`` (a value holding ``"|"`` is then refused: two contexts would read as one). Empty: one context ``"all"``.
    batch_col
        ``obs`` column of the technical or donor batch (donor, plate, GEM group), or ``None``.
    dose_col
        ``obs`` column with a dose per cell (a number, or ``"d1+d2"`` per atom of a combination).
    combo_delimiter
        Separator of combination atoms in ``perturbation_col`` (``"+"`` as in GEARS / PerturBench).
    expression
        Where the expression matrix lives: ``"X"``, a layer name (``"counts"`` or
        ``"layers/counts"``), ``"raw"`` (``adata.raw``, with its own genes: scanpy's unscaled log values
        when ``X`` was scaled) or ``"obsm/<key>"`` (an embedding; negative values allowed).
    perturbation_type
        ``"genetic"`` (atoms are gene symbols) or ``"chemical"`` (drugs).
    scale
        ``"auto"`` (detect), ``"counts"`` (raw UMI counts; fractional, ambient-corrected counts must be
        declared so) or ``"log"`` (already log1p-normalised). ``auto`` reads integers as counts even when
        ``uns['log1p']`` is set (with a warning when the flag contradicts ``X``).
    normalize
        Counts are turned into log1p(normalize_total) values through scanpy when True.
    target_sum
        ``normalize_total`` target; fixed (not the data median) so that no statistic of held-out
        cells leaks into training cells.
    min_cells
        Fewest cells a (perturbation, context) group may have; smaller groups are an error.
    missing_labels
        What to do with cells whose perturbation, context or batch label is missing (NaN, None,
        empty or ``"nan"``): ``"error"`` (default; the message names the column and the count) or
        ``"drop"`` (leave those cells out, with a warning). A missing label is never read as a control.
    """

    perturbation_col: str | tuple[str, ...] = "condition"
    control_labels: tuple[str, ...] = COMMON_CONTROL_LABELS
    context_cols: tuple[str, ...] = ()
    batch_col: str | None = None
    dose_col: str | None = None
    combo_delimiter: str = "+"
    expression: str = "X"
    perturbation_type: str = "genetic"
    scale: str = "auto"
    normalize: bool = True
    target_sum: float = 1e4
    min_cells: int = 2
    missing_labels: str = "error"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.control_labels, str):
            object.__setattr__(self, "control_labels", (self.control_labels,))
        if isinstance(self.context_cols, str):
            object.__setattr__(self, "context_cols", (self.context_cols,))
        if isinstance(self.perturbation_col, list):
            object.__setattr__(self, "perturbation_col", tuple(self.perturbation_col))
        # labels are compared as text (a numeric column's 0 reads "0"): a control label given as a number (YAML [0]) too
        object.__setattr__(self, "control_labels", tuple(str(c) for c in self.control_labels))
        object.__setattr__(self, "context_cols", tuple(self.context_cols))
        if not self.control_labels:
            raise ValueError("PerturbationSchema.control_labels is empty; give the label(s) of control cells, e.g. ('control',)")
        if not self.combo_delimiter:
            raise ValueError("PerturbationSchema.combo_delimiter must be a non-empty string such as '+'")
        if self.perturbation_type not in PERTURBATION_TYPES:  # the values the files distgen writes record
            raise ValueError(f"PerturbationSchema.perturbation_type must be 'genetic' or 'chemical', got {self.perturbation_type!r}")
        if self.scale not in ("auto", "counts", "log"):
            raise ValueError(f"PerturbationSchema.scale must be 'auto', 'counts' or 'log', got {self.scale!r}")
        if self.missing_labels not in ("error", "drop"):
            raise ValueError(f"PerturbationSchema.missing_labels must be 'error' or 'drop', got {self.missing_labels!r}")
        if self.min_cells < 1:
            raise ValueError(f"PerturbationSchema.min_cells must be >= 1, got {self.min_cells}")

    @property
    def perturbation_cols(self) -> tuple[str, ...]:
        pc = self.perturbation_col
        return pc if isinstance(pc, tuple) else (pc,)

    def required_columns(self) -> list[str]:
        cols = [*self.perturbation_cols, *self.context_cols]
        cols += [c for c in (self.batch_col, self.dose_col) if c is not None]
        return cols

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerturbationSchema:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)
