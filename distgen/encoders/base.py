"""Distribution encoder interface: a population (a masked set of cells) -> a point in a Hilbert space."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from distgen.capabilities import EncoderCapabilities
from distgen.registry import Registry


class Encoder(nn.Module, ABC):
    """Embed sets of cells and measure distances between populations.

    ``forward(cells [B, m, G], mask [B, m]) -> [B, D]`` must be invariant to the order of cells
    and ignore padded cells (``mask`` False). ``distance(P, P_mask, Q, Q_mask) -> [B]`` is the
    distance between populations in the encoder's space; the default is the squared Euclidean
    distance between embeddings. Encoders with a closed form (a kernel mean embedding: the MMD by
    the kernel trick) override it.

    Attributes
    ----------
    dim
        Embedding dimension ``D``.
    """

    capabilities: EncoderCapabilities = EncoderCapabilities()
    dim: int

    @abstractmethod
    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, G], [B, m] -> [B, D]`` population embedding."""

    def distance(self, p: Tensor, p_mask: Tensor, q: Tensor, q_mask: Tensor) -> Tensor:
        """``[B]`` squared distance between populations ``p [B, m, G]`` and ``q [B, n, G]``."""
        return (self(p, p_mask) - self(q, q_mask)).pow(2).sum(-1)

    def min_set_size(self, use: str) -> tuple[int, str]:
        """``(fewest real cells per set, why)`` that ``use`` (``"embedding"`` or ``"distance"``) works with.

        Training refuses a ``data.set_size`` below it before any step (``distgen.train.loop.check_set_size``).
        Default: one cell (every set has at least one real cell).
        """
        return 1, ""

    def unused_params(self, use: str) -> dict[str, str]:
        """``{parameter: why}``: what this encoder was given that a model using only its ``use`` never reads.

        ``use`` is ``"embedding"`` (``forward`` only: a population encoder) or ``"distance"``
        (``distance`` only: a distribution loss). Assembly refuses such parameters: an ablation that
        changes one would silently change nothing. Default: none (every parameter acts in both uses).
        """
        return {}


def masked_mean(cells: Tensor, mask: Tensor) -> Tensor:
    """``[B, m, F], [B, m] -> [B, F]`` mean over the real (unmasked) cells of each set."""
    w = mask.to(cells.dtype)[..., None]
    return (cells * w).sum(-2) / w.sum(-2).clamp_min(1.0)


#: The encoders registry: built-ins here, plugins from entry points ``distgen.encoders``.
encoders: Registry[Encoder] = Registry(
    "encoders",
    Encoder,
    {
        "deepsets": "distgen.encoders.deepsets:DeepSetsEncoder",
        "kme": "distgen.encoders.kme:KernelMeanEmbedding",
        "mean": "distgen.encoders.mean:MeanEmbedding",
        "set_transformer": "distgen.encoders.set_transformer:SetTransformerEncoder",
    },
)
