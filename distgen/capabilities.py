"""Capabilities: what a component offers and needs, as one typed structure per kind.

Every component declares ``capabilities`` (a class attribute holding the dataclass of its kind);
assembly, the pre-flight check, the evaluation and the contract suites read them, and
``distgen components`` shows them. Fields are only what some code reads: a field nobody reads is
documentation that can silently lie, so it does not belong here.

A field whose value depends on how the component is built is ``None`` ("per instance") at class
level; the built object then carries the resolved value in its own ``capabilities`` attribute,
e.g. ``CrossDiT(output="relu").capabilities.output_range == "nonnegative"``, and a ``Generator``
supports unseen perturbations exactly when the parts that embed perturbations do.

A plugin that needs more fields subclasses its kind's dataclass (``distgen-bayes`` adds
``posterior_intervals`` to ``ModelCapabilities``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

#: Shown for a field that is decided per built instance.
PER_INSTANCE = "per instance"

#: ``MetricCapabilities.bounds`` of the usual kinds of metric: no bound known, a correlation (Pearson, Spearman,
#: Matthews, informedness, markedness), a fraction (AUC, overlap, recall, direction match, rank score, Jaccard),
#: a mean of squares, absolute values, norms or counts, and a score of at most 1 (an R^2).
UNBOUNDED: tuple[float, float] = (-math.inf, math.inf)
CORRELATION: tuple[float, float] = (-1.0, 1.0)
FRACTION: tuple[float, float] = (0.0, 1.0)
NONNEGATIVE: tuple[float, float] = (0.0, math.inf)
AT_MOST_ONE: tuple[float, float] = (-math.inf, 1.0)


def _doc(text: str, none_is_a_value: bool = False) -> dict[str, Any]:
    """Field metadata: its documentation, and whether ``None`` is one of its values rather than "per instance"."""
    return {"doc": text, "none_is_a_value": none_is_a_value}


@dataclass(frozen=True)
class Capabilities:
    """Base of every kind's capabilities (a kind without fields uses it as is)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` (tuples become lists, per-instance ``None`` stays ``None``, an infinite float is ``None``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def describe(self) -> dict[str, Any]:
        """Like ``to_dict`` with per-instance fields shown as ``"per instance"`` (for listings)."""
        return {k: PER_INSTANCE if v is None and _per_instance(type(self), k) else v for k, v in self.to_dict().items()}

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (how a built instance resolves per-instance fields)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def fields_doc(cls) -> list[tuple[str, str, str]]:
        """``(name, type, doc)`` of every field, for generated documentation."""
        return [(f.name, str(f.type), f.metadata.get("doc", "")) for f in dataclasses.fields(cls)]


def _per_instance(cls: type, name: str) -> bool:
    """A field typed ``... | None`` is per instance when ``None``, unless ``None`` is one of its values (``_doc``)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return "None" in str(f.type) and not f.metadata.get("none_is_a_value", False)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return None  # an open side of MetricCapabilities.bounds: JSON (``distgen components --json``) has no infinity
    if isinstance(v, tuple | list | frozenset | set):
        return [_plain(x) for x in (sorted(v) if isinstance(v, frozenset | set) else v)]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class KernelCapabilities(Capabilities):
    """What a kernel is, mathematically."""

    conditionally_pd: bool = field(default=False, metadata=_doc(
        "Only conditionally positive definite (the energy kernel): v^T K v >= 0 for weights summing to zero. "
        "A kernel mean embedding centres such a kernel; the contract suite checks the centred Gram matrix."))
    inner_product: bool = field(default=False, metadata=_doc(
        "k(x, y) depends on x and y only through x . y, |x|^2 and |y|^2 (linear and radial kernels): an InnerProductKernel "
        "with from_gram. Distances between sets then take every kernel value from one matrix product per pair "
        "of sets, with each point's squared norm read off the diagonal of its own set's product."))


@dataclass(frozen=True)
class EncoderCapabilities(Capabilities):
    """What an encoder outputs and which genes it can read."""

    output_kind: str = field(default="vector", metadata=_doc(
        "What forward returns: 'vector' ([B, D]); a backbone's population_kind must match."))
    fixed_gene_panel: bool = field(default=False, metadata=_doc(
        "Reads exactly the n_genes columns it was built for, so it cannot score gene subsets (genes_per_step)."))


@dataclass(frozen=True)
class ConditionerCapabilities(Capabilities):
    """Which perturbations a conditioner can embed."""

    supports_unseen_perturbations: bool | None = field(default=False, metadata=_doc(
        "Can embed a perturbation atom never seen in training (can_embed is True for some such atom)."))
    embeds_batches: bool | None = field(default=False, metadata=_doc(
        "The embedding depends on labels.batch (a learned row per batch): a batch that no training set carries "
        "keeps an untrained row, so the pre-flight refuses to predict it unless preflight.allow_unembedded."))
    embeds_contexts: bool | None = field(default=False, metadata=_doc(
        "The embedding holds a learned row per context (labels.context): a context that no training set carries "
        "keeps an untrained row, so the pre-flight refuses to predict it unless preflight.allow_unembedded. False when "
        "contexts are ignored or read from frozen vectors (a context table)."))
    reads_dose: bool | None = field(default=False, metadata=_doc(
        "The embedding depends on labels.dose (an atom's dose scales its vector). A model whose conditioners all ignore it, "
        "trained on data with doses (schema.dose_col), is warned about by the pre-flight: its doses would change nothing."))


@dataclass(frozen=True)
class BackboneCapabilities(Capabilities):
    """What a backbone takes and gives; assembly matches it with the other parts."""

    gene_subsampling: bool = field(default=False, metadata=_doc(
        "Works on any subset of gene columns (required by genes_per_step)."))
    self_conditioning: bool | None = field(default=False, metadata=_doc(
        "Takes the previous data estimate as forward(..., x_self_cond=...) (required by a dynamics that "
        "self-conditions)."))
    permutation_equivariant: bool = field(default=True, metadata=_doc(
        "Permuting the cells of a set permutes the output the same way (checked by the contract suite)."))
    embeds_perturbations: bool = field(default=False, metadata=_doc(
        "Tokenises perturbations itself (can_embed decides with, or instead of, the conditioner)."))
    supports_unseen_perturbations: bool | None = field(default=False, metadata=_doc(
        "With embeds_perturbations: can embed atoms never seen in training (e.g. genes of its gene-token table)."))
    output_range: str | None = field(default="real", metadata=_doc(
        "'real' or 'nonnegative' (a ReLU/softplus head cannot output noise or velocity, which take either sign)."))
    population_kind: str = field(default="vector", metadata=_doc(
        "What Condition.population must be (a population encoder's output_kind)."))
    requires_dynamics: Mapping[str, Any] = field(default_factory=dict, metadata=_doc(
        "Dynamics capabilities this backbone needs, {field: value or list of allowed values}."))
    independent_sets: bool = field(default=False, metadata=_doc(
        "Each set's output depends only on that set's inputs, so sets can share one forward (guidance "
        "evaluates a condition and its null in one batched call)."))
    input_copies: bool = field(default=False, metadata=_doc(
        "With independent_sets: forward(x_t, t, cond, copies=k) reads one x_t (and x_self_cond) under a condition "
        "of k stacked copies (k B sets) and returns [k B, m, G], equal to passing x_t repeated k times; the input "
        "projection runs once for all copies (guidance's condition and null share the noisy cells)."))


@dataclass(frozen=True)
class DynamicsCapabilities(Capabilities):
    """Where a dynamics starts, what its network predicts and what it asks of the backbone."""

    sources: tuple[str, ...] = field(default=("noise",), metadata=_doc(
        "Source populations it can start from: 'noise' and/or 'control'."))
    signed_prediction: bool | None = field(default=True, metadata=_doc(
        "The network's target takes either sign (noise, velocity), so a non-negative head cannot produce it."))
    self_conditioning: bool | None = field(default=False, metadata=_doc(
        "Feeds the previous data estimate back to the backbone (needs a backbone with self_conditioning)."))
    guidance: bool | None = field(default=False, metadata=_doc(
        "Samples with classifier-free guidance (needs a model trained with p_drop_condition > 0)."))
    requires_backbone: Mapping[str, Any] = field(default_factory=dict, metadata=_doc(
        "Backbone capabilities this dynamics needs, {field: value or list of allowed values}."))


@dataclass(frozen=True)
class CouplingCapabilities(Capabilities):
    """Couplings declare nothing that other parts read."""


@dataclass(frozen=True)
class MetricCapabilities(Capabilities):
    """How to read a metric's numbers."""

    higher_is_better: bool = field(default=False, metadata=_doc("Orientation of the score (rankings, calibration)."))
    celleval: str | None = field(default=None, metadata=_doc(
        "The name cell-eval gives the same quantity, or None when it has none.", none_is_a_value=True))
    min_perturbations: int = field(default=1, metadata=_doc(
        "Perturbations needed for a defined value: 1 for per-perturbation metrics, 2 for a correlation "
        "across perturbations (the one-perturbation call then returns NaN)."))
    diagnostic: bool = field(default=False, metadata=_doc(
        "A quantity reported beside the scores (e.g. the number of real significant genes) that does not rank "
        "predictions: higher_is_better is not an orientation and a perfect prediction need not score better."))
    per_perturbation: bool = field(default=True, metadata=_doc(
        "One value per perturbation. False: one number for the whole evaluation (per context), such as a correlation "
        "across perturbations or a ratio of sums, that metrics.csv repeats on every row; distgen compare takes it once, "
        "never as paired observations."))
    bounds: tuple[float, float] = field(default=UNBOUNDED, metadata=_doc(
        "(low, high): the values the metric can take by its definition, either side possibly infinite; (-inf, inf) when "
        "unbounded or unknown. Intervals of its mean are cut there (the true mean lies inside, so cutting never lowers "
        "coverage), and intervals of a difference of two of its means at (low - high, high - low). Declare only what "
        "the definition guarantees: a noise-corrected (unbiased) estimator can leave the range of the quantity it "
        "estimates. The contract suite checks the metric's values on its example data lie inside. Listings and "
        "--json show an open side as None (null)."))

    def __post_init__(self) -> None:
        b = self.bounds
        if (not isinstance(b, tuple) or len(b) != 2 or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in b)
                or math.isnan(b[0]) or math.isnan(b[1]) or b[0] > b[1]):
            raise ValueError(f"MetricCapabilities.bounds must be a tuple (low, high) of numbers with low <= high, either "
                             f"possibly infinite ((-math.inf, math.inf) when unbounded), got {b!r}")
        object.__setattr__(self, "bounds", (float(b[0]), float(b[1])))


@dataclass(frozen=True)
class ModelCapabilities(Capabilities):
    """What a whole model can predict and what it needs."""

    supports_unseen_perturbations: bool | None = field(default=False, metadata=_doc(
        "Can predict conditions containing atoms never seen in training (can_predict is True for some)."))
    needs_control_cells: bool = field(default=True, metadata=_doc(
        "Uses the supplied control cells (every test context then needs controls)."))


@dataclass(frozen=True)
class MatcherCapabilities(Capabilities):
    """What a control matcher reads."""

    needs_expression: bool = field(default=False, metadata=_doc(
        "Looks at expression (receives target and pool_x), not only at labels."))


@dataclass(frozen=True)
class SolverCapabilities(Capabilities):
    """ODE/SDE solvers: how steps are chosen."""

    adaptive: bool = field(default=False, metadata=_doc(
        "Chooses its own steps from tolerances (else a fixed grid of `steps` steps)."))


@dataclass(frozen=True)
class SamplerCapabilities(Capabilities):
    """Diffusion samplers: whether repeated calls with one seed but different noise differ."""

    stochastic: bool | None = field(default=False, metadata=_doc(
        "Draws fresh noise while sampling (ancestral DDPM, reverse SDE, DDIM with eta > 0)."))


def resolve(obj: Any) -> Capabilities:
    """The capabilities of a component class or built instance (the base default when undeclared)."""
    caps = getattr(obj, "capabilities", None)
    if caps is None:
        return Capabilities()
    if not isinstance(caps, Capabilities):
        name = getattr(obj, "__qualname__", type(obj).__qualname__)
        raise TypeError(
            f"{name}.capabilities is {type(caps).__name__} {caps!r}; declare it with the dataclass of its kind "
            "from distgen.capabilities (e.g. EncoderCapabilities(output_kind='vector'))"
        )
    return caps


__all__ = [
    "AT_MOST_ONE",
    "CORRELATION",
    "FRACTION",
    "NONNEGATIVE",
    "PER_INSTANCE",
    "UNBOUNDED",
    "BackboneCapabilities",
    "Capabilities",
    "ConditionerCapabilities",
    "CouplingCapabilities",
    "DynamicsCapabilities",
    "EncoderCapabilities",
    "KernelCapabilities",
    "MatcherCapabilities",
    "MetricCapabilities",
    "ModelCapabilities",
    "SamplerCapabilities",
    "SolverCapabilities",
    "resolve",
]
