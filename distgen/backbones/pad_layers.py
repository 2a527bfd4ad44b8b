"""Layers of the PAD-Transformer: value encoders, gene adaLN, perturbation adapter, blocks, decoder.

Shapes: ``N`` cells, ``L`` gene tokens, ``d`` width. Where scDFM concatenates a per-cell vector
to every token before a linear map (``W [h; e_p]``), the map is split into ``W_h h + W_p e_p`` so
the ``[N, L, 2d]`` concatenation is never built; the function is the same.
"""

from __future__ import annotations

from torch import Tensor, nn

from distgen.backbones.differential_attention import DifferentialAttention


class ValueEncoder(nn.Module):
    """Scalar expression -> ``d``: ``Dropout(LN(W2 ReLU(W1 min(x, clip))))``; ``[N, L] -> [N, L, d]``."""

    def __init__(self, dim: int, dropout: float = 0.1, clip: float = 512.0) -> None:
        super().__init__()
        self.clip = clip
        self.net = nn.Sequential(nn.Linear(1, dim), nn.ReLU(), nn.Linear(dim, dim), nn.LayerNorm(dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.clamp_max(self.clip)[..., None])


class SplitLinear(nn.Module):
    """``W [a; b] + c`` for token features ``a [N, L, d]`` and a per-cell vector ``b [N, d]``."""

    def __init__(self, dim_a: int, dim_b: int, out: int) -> None:
        super().__init__()
        self.a = nn.Linear(dim_a, out)
        self.b = nn.Linear(dim_b, out, bias=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.a(a) + self.b(b)[:, None, :]


class Fusion(nn.Module):
    """Initial state from the noisy-state and control token features: ``LN(Wb GELU(Wa [hx; hc]))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.wx, self.wc = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim))

    def forward(self, hx: Tensor, hc: Tensor) -> Tensor:
        return self.out(self.wx(hx) + self.wc(hc))


class GeneAdaLN(nn.Module):
    """Per-token modulation by the gene embedding: ``h + g (LN(h) s + beta)``; ``(beta, g, s)`` from ``e_g [L, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))

    def forward(self, h: Tensor, e_g: Tensor) -> Tensor:
        beta, g, s = self.mod(e_g).chunk(3, -1)  # [L, d] each, shared by all cells
        return h + g * (self.norm(h) * s + beta)


class Adapter(nn.Module):
    """Perturbation injection without residual: ``LReLU(W2 Drop(LReLU(W1 [h; e_p])))``."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w1 = SplitLinear(dim, dim, dim)
        self.rest = nn.Sequential(nn.LeakyReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.LeakyReLU())

    def forward(self, h: Tensor, e_p: Tensor) -> Tensor:
        return self.rest(self.w1(h, e_p))


class PADBlock(nn.Module):
    """adaLN(time) + attention + MLP. ``control=False``: self block; True: cross block with the control.

    Differential self block: ``Q <- h~``, ``K <- h`` (raw, as scDFM), ``V <- h~``. Differential cross
    block: map 1 from ``h~``, map 2 from the control tokens ``h_c``, ``V <- h~`` (the control's
    attention pattern is subtracted). Standard attention (ablation): self-attention, or plain
    cross-attention from ``h~`` to ``h_c``.
    """

    def __init__(self, dim: int, heads: int, layer: int, control: bool, attention: str, mlp_ratio: int = 4, impl: str = "fused") -> None:
        super().__init__()
        self.control = control
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = DifferentialAttention(dim, heads, layer, attention, impl)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, h: Tensor, c_t: Tensor, h_c: Tensor) -> Tensor:
        b1, g1, a1, b2, g2, a2 = self.ada(c_t)[:, None, :].chunk(6, -1)
        ht = self.norm1(h) * (1 + g1) + b1
        differential = self.attn.attention == "differential"
        if self.control:
            att = self.attn(ht, ht, ht, h_c, h_c) if differential else self.attn(ht, h_c, h_c)
        else:
            att = self.attn(ht, h, ht)
        h = h + a1 * att
        return h + a2 * self.mlp(self.norm2(h) * (1 + g2) + b2)


class Decoder(nn.Module):
    """Per-token output: ``W5 LReLU(W4 LReLU(W3 [h; e_p]))``; ``[N, L, d] -> [N, L]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w3 = SplitLinear(dim, dim, dim)
        self.rest = nn.Sequential(nn.LeakyReLU(), nn.Linear(dim, dim), nn.LeakyReLU(), nn.Linear(dim, 1))

    def forward(self, h: Tensor, e_p: Tensor) -> Tensor:
        return self.rest(self.w3(h, e_p)).squeeze(-1)
