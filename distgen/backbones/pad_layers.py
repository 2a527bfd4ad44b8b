"""Layers of the PAD-Transformer: value encoders, gene adaLN, perturbation adapter, blocks, decoder.

Shapes: ``N`` cells, ``L`` gene tokens, ``d`` width. Where scDFM concatenates a per-cell vector
to every token before a linear map (``W [h; e_p]``), the map is split into ``W_h h + W_p e_p`` so
the ``[N, L, 2d]`` concatenation is never built; the function is the same.

The elementwise glue is written to touch each ``[N, L, d]`` activation as few times as eager
PyTorch allows (the CPU step is bound by memory passes as much as by matmuls): ``x (1 + g) + b``
and ``h + a y`` are single ``addcmul`` passes, the gene adaLN is folded into one scale and one shift
per gene token (computed on ``[L, d]``, not ``[N, L, d]``), and per-set terms (``W_p e_p``) join the
bias before they are broadcast. Terms that depend only on the condition can be computed once by the
caller and passed in (``pe``, ``coef``, ``pre``): sampling reuses them across ODE steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distgen.backbones.differential_attention import DifferentialAttention
from distgen.backbones.gelu import TanhGELU


class ValueEncoder(nn.Module):
    """Scalar expression -> ``d``: ``Dropout(LN(W2 ReLU(W1 min(x, clip))))``; ``[N, L] -> [N, L, d]``."""

    def __init__(self, dim: int, dropout: float = 0.1, clip: float = 512.0) -> None:
        super().__init__()
        self.clip = clip
        self.net = nn.Sequential(nn.Linear(1, dim), nn.ReLU(), nn.Linear(dim, dim), nn.LayerNorm(dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.clamp_max(self.clip)[..., None])


@torch.no_grad()
def xavier_joint_(parts: list[tuple[nn.Linear, int]]) -> None:
    """Xavier-uniform init of one matrix cut into ``parts`` (each a ``Linear`` and the axis it is cut along).

    scDFM initialises its ``Linear(2d, d)`` on ``[h; e_p]`` and its gene encoder's fused ``in_proj``
    (``[3d, d]``) as single matrices; distgen holds the pieces as separate maps, so their bound must come
    from the whole matrix's fans (``sqrt(6 / (fan_in + fan_out))``), not from each piece's.
    """
    axis = parts[0][1]
    shapes = [lin.weight.shape for lin, _ in parts]
    whole = torch.empty(sum(s[axis] for s in shapes), shapes[0][1 - axis]) if axis == 0 else torch.empty(shapes[0][0], sum(s[1] for s in shapes))
    nn.init.xavier_uniform_(whole)
    for piece, (lin, _) in zip(whole.split([s[axis] for s in shapes], dim=axis), parts):
        lin.weight.copy_(piece)


class SplitLinear(nn.Module):
    """``W [a; b] + c`` for token features ``a [N, L, d]`` and a per-cell vector ``b [N, d]``."""

    def __init__(self, dim_a: int, dim_b: int, out: int) -> None:
        super().__init__()
        self.a = nn.Linear(dim_a, out)
        self.b = nn.Linear(dim_b, out, bias=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.apply_set(a, self.b(b))

    def reset_joint(self) -> None:
        """Xavier-uniform over the whole ``[out, dim_a + dim_b]`` matrix (scDFM's ``Linear(2d, d)``), zero bias."""
        xavier_joint_([(self.a, 1), (self.b, 1)])
        nn.init.zeros_(self.a.bias)

    def apply_set(self, a: Tensor, pb: Tensor) -> Tensor:
        """``W_a a + (c + pb)`` for a precomputed per-set term ``pb = W_b b`` ``[N, out]``."""
        return F.linear(a, self.a.weight) + (self.a.bias + pb)[:, None, :]


class Fusion(nn.Module):
    """Initial state from the noisy-state and control token features: ``LN(Wb GELU(Wa [hx; hc]))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.wx, self.wc = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim))

    def forward(self, hx: Tensor, hc: Tensor, wc_hc: Tensor | None = None) -> Tensor:
        """``wc_hc``: ``W_c hc`` computed earlier (it depends on the control only)."""
        return self.out(self.wx(hx) + (self.wc(hc) if wc_hc is None else wc_hc))


class GeneAdaLN(nn.Module):
    """Per-token modulation by the gene embedding: ``h + g (LN(h) s + beta)``; ``(beta, g, s)`` from ``e_g [L, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))

    def coefficients(self, e_g: Tensor) -> tuple[Tensor, Tensor]:
        """``(A, B)`` ``[L, d]`` with ``h + g (LN(h) s + beta) = h + n A + B``, ``n`` the plain normalised ``h``.

        With the LayerNorm's affine ``(w, c)``: ``A = g s w`` and ``B = g (c s + beta)``.
        """
        beta, g, s = self.mod(e_g).chunk(3, -1)  # [L, d] each, shared by all cells
        return g * s * self.norm.weight, g * torch.addcmul(beta, self.norm.bias, s)

    def forward(self, h: Tensor, e_g: Tensor | None = None, coef: tuple[Tensor, Tensor] | None = None) -> Tensor:
        a, b = self.coefficients(e_g) if coef is None else coef  # type: ignore[arg-type]
        return torch.addcmul(h + b, F.layer_norm(h, h.shape[-1:], None, None, self.norm.eps), a)


class Adapter(nn.Module):
    """Perturbation injection without residual: ``LReLU(W2 Drop(LReLU(W1 [h; e_p])))``."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w1 = SplitLinear(dim, dim, dim)
        self.rest = nn.Sequential(nn.LeakyReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.LeakyReLU())

    def forward(self, h: Tensor, e_p: Tensor | None = None, pe: Tensor | None = None) -> Tensor:
        """``pe``: the per-set term ``W_p e_p`` computed earlier."""
        return self.rest(self.w1.apply_set(h, self.w1.b(e_p) if pe is None else pe))


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
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), TanhGELU(), nn.Linear(mlp_ratio * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, h: Tensor, c_t: Tensor, h_c: Tensor | None = None, pre: dict[str, Tensor] | None = None) -> Tensor:
        """``pre``: the cross block's projections of ``h_c`` (``attn.control_projections``), if computed earlier."""
        b1, g1, a1, b2, g2, a2 = self.ada(c_t)[:, None, :].chunk(6, -1)
        ht = torch.addcmul(b1, self.norm1(h), 1 + g1)
        if self.control:
            if pre is None:
                if h_c is None:
                    raise ValueError("the cross block needs the control tokens h_c or their projections")
                pre = self.attn.control_projections(h_c)
            att = self.attn(ht, ht, ht, pre=pre)  # what pre holds (Q2, K2; standard: K, V) comes from h_c
        else:
            att = self.attn(ht, h, ht)
        h = torch.addcmul(h, a1, att)
        return torch.addcmul(h, a2, self.mlp(torch.addcmul(b2, self.norm2(h), 1 + g2)))


class Decoder(nn.Module):
    """Per-token output: ``W5 LReLU(W4 LReLU(W3 [h; e_p]))``; ``[N, L, d] -> [N, L]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w3 = SplitLinear(dim, dim, dim)
        self.rest = nn.Sequential(nn.LeakyReLU(), nn.Linear(dim, dim), nn.LeakyReLU(), nn.Linear(dim, 1))

    def forward(self, h: Tensor, e_p: Tensor | None = None, pe: Tensor | None = None) -> Tensor:
        return self.rest(self.w3.apply_set(h, self.w3.b(e_p) if pe is None else pe)).squeeze(-1)
