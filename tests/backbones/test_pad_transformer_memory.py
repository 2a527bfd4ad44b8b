"""The fused PAD-Transformer never materialises an [L, L] attention map; the naive one does."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from distgen.backbones.base import Condition
from distgen.backbones.pad_transformer import PADTransformer
from distgen.types import ConditionLabels, DataInfo


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest(impl: str, length: int = 300) -> int:
    genes = tuple(f"g{i}" for i in range(length))
    info = DataInfo(genes=genes, perturbations=genes[:2])
    adj = torch.zeros(length, length, dtype=torch.bool)
    idx = torch.randint(0, length, (length, 5), generator=torch.Generator().manual_seed(0))
    adj.scatter_(1, idx, True)
    torch.manual_seed(0)
    net = PADTransformer(info, gene_graph=adj | adj.T, d_model=8, heads=2, layers=1, dropout=0.0, attention_impl=impl)
    x = torch.rand(1, 2, length)
    cond = Condition(gene_ids=torch.arange(length), control=torch.rand(1, 2, length), control_mask=torch.ones(1, 2, dtype=torch.bool),
                     labels=ConditionLabels.make([[0, 1]]))
    with LargestTensor() as mode:
        net(x, torch.rand(1, 2), cond).pow(2).mean().backward()
    return mode.largest


def test_fused_attention_has_no_quadratic_tensor_in_forward_or_backward():
    small, big = _largest("fused", 300), _largest("fused", 600)
    assert _largest("naive", 300) >= 300 * 300  # the naive path builds [L, L] maps
    assert big < 600 * 600 // 4
    assert big / small < 2.5  # the largest tensor grows linearly with the gene tokens
