"""A plain, unfused PAD-Transformer forward over a ``PADTransformer``'s own parameters: the oracle.

It spells out scDFM's equations one operation at a time, as the backbone computed them before its
speed work (separate Q/K/V projections, unfolded adaLN and gene adaLN, RMSNorm then the
``(1 - lambda_init)`` scale, explicit ``[L, L]`` differential maps). The fused backbone must give the
same outputs, gradients, losses and samples within float tolerance (``test_pad_fused.py``).
Dropout is not modelled: compare with ``dropout=0`` or in eval mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from distgen.backbones.base import Condition


def _heads(x: Tensor, heads: int) -> Tensor:
    n, length, d = x.shape
    return x.view(n, length, heads, d // heads).transpose(1, 2)


def _softmax_map(q: Tensor, k: Tensor) -> Tensor:
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)


def attention(att, q1_in: Tensor, k1_in: Tensor, v_in: Tensor, q2_in: Tensor | None = None, k2_in: Tensor | None = None) -> Tensor:
    """``DifferentialAttention`` as separate projections and explicit maps."""
    h = att.heads
    n, length, d = q1_in.shape
    q1, k1, v = _heads(F.linear(q1_in, att.q1.weight), h), _heads(F.linear(k1_in, att.k1.weight), h), _heads(F.linear(v_in, att.v.weight), h)
    if att.attention == "standard":
        o = _softmax_map(q1, k1) @ v
    else:
        q2 = _heads(F.linear(q1_in if q2_in is None else q2_in, att.q2.weight), h)
        k2 = _heads(F.linear(k1_in if k2_in is None else k2_in, att.k2.weight), h)
        lam = torch.exp(att.lambda_q1 @ att.lambda_k1) - torch.exp(att.lambda_q2 @ att.lambda_k2) + att.lambda_init
        o = (_softmax_map(q1, k1) - lam * _softmax_map(q2, k2)) @ v
        rms = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + att.head_norm.eps)
        o = rms * att.head_norm.weight * (1.0 - att.lambda_init)
    return F.linear(o.transpose(1, 2).reshape(n, length, d), att.out.weight)


def block(blk, h: Tensor, c_t: Tensor, h_c: Tensor) -> Tensor:
    """``PADBlock``: adaLN(time) -> attention -> gated residual; adaLN -> MLP -> gated residual."""
    b1, g1, a1, b2, g2, a2 = F.linear(F.silu(c_t), blk.ada[1].weight, blk.ada[1].bias)[:, None, :].chunk(6, -1)
    d = h.shape[-1]
    ht = F.layer_norm(h, (d,), eps=1e-6) * (1 + g1) + b1
    differential = blk.attn.attention == "differential"
    if blk.control:
        att = attention(blk.attn, ht, ht, ht, h_c, h_c) if differential else attention(blk.attn, ht, h_c, h_c)
    else:
        att = attention(blk.attn, ht, h, ht)
    h = h + a1 * att
    fc1, fc2 = blk.mlp[0], blk.mlp[2]
    m = F.linear(F.gelu(F.linear(F.layer_norm(h, (d,), eps=1e-6) * (1 + g2) + b2, fc1.weight, fc1.bias), approximate="tanh"), fc2.weight, fc2.bias)
    return h + a2 * m


def gene_ada(ada, h: Tensor, e_g: Tensor) -> Tensor:
    """``GeneAdaLN``: ``h + g (LN(h) s + beta)`` with an affine LayerNorm."""
    beta, g, s = F.linear(F.silu(e_g), ada.mod[1].weight, ada.mod[1].bias).chunk(3, -1)
    return h + g * (F.layer_norm(h, (h.shape[-1],), ada.norm.weight, ada.norm.bias, ada.norm.eps) * s + beta)


def adapter(ad, h: Tensor, e_p: Tensor) -> Tensor:
    x = F.linear(h, ad.w1.a.weight, ad.w1.a.bias) + F.linear(e_p, ad.w1.b.weight)[:, None, :]
    lin = ad.rest[2]
    return F.leaky_relu(F.linear(F.leaky_relu(x), lin.weight, lin.bias))


def value(enc, x: Tensor) -> Tensor:
    l1, l2, ln = enc.net[0], enc.net[2], enc.net[3]
    y = F.linear(F.relu(F.linear(x.clamp_max(enc.clip)[..., None], l1.weight, l1.bias)), l2.weight, l2.bias)
    return F.layer_norm(y, (y.shape[-1],), ln.weight, ln.bias, ln.eps)


def forward(net, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
    """The whole backbone; the gene encoder and perturbation pooling are the module's own (unchanged)."""
    b, m, length = x_t.shape
    gene_ids = cond.gene_ids.long()
    labels = cond.labels
    if net.encoding == "gene":
        tok = net.atom_token[labels.perturbation.clamp_min(0)].flatten()
        ids = torch.cat([gene_ids, tok, tok.new_tensor([net.control_token])])
        uniq, inv = torch.unique(ids, return_inverse=True)
        enc = net.genes(uniq)
        e_g = enc[inv[:length]]
        pos = torch.full((net.genes.n_vocab,), -1, dtype=torch.long)
        pos[uniq] = torch.arange(uniq.numel())
        e_p = net._perturbation(labels, lambda i: enc[pos[i]])
    else:
        e_g = net.genes(gene_ids)
        e_p = net._perturbation(labels, net.pert_table)
    if cond.drop is not None:
        e_p = torch.where(cond.drop[:, None], net.null.expand_as(e_p), e_p)
    n = b * m
    ctrl = net._controls(cond, m).reshape(n, length)
    h_c = value(net.value_c, ctrl) + e_g
    hx = value(net.value_x, x_t.reshape(n, length)) + e_g
    fu = net.fusion
    h = F.linear(hx, fu.wx.weight, fu.wx.bias) + F.linear(h_c, fu.wc.weight)
    lin, ln = fu.out[1], fu.out[2]
    h = F.layer_norm(F.linear(F.gelu(h), lin.weight, lin.bias), (h.shape[-1],), ln.weight, ln.bias, ln.eps)
    c_t = net.time(t.reshape(n))
    e_p = e_p.repeat_interleave(m, 0)
    for ada, ad, sb, cb in zip(net.gene_ada, net.adapters, net.self_blocks, net.cross_blocks):
        h = adapter(ad, gene_ada(ada, h, e_g), e_p)
        h = block(cb, block(sb, h, c_t, h_c), c_t, h_c)
    dec = net.decoder
    x = F.linear(h, dec.w3.a.weight, dec.w3.a.bias) + F.linear(e_p, dec.w3.b.weight)[:, None, :]
    l4, l5 = dec.rest[1], dec.rest[3]
    return F.linear(F.leaky_relu(F.linear(F.leaky_relu(x), l4.weight, l4.bias)), l5.weight, l5.bias).squeeze(-1).view(b, m, length)
