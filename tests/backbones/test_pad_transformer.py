"""PAD-Transformer: fused vs naive differential attention, graph gene encoder, perturbation tokens."""

import math

import pytest
import torch

from distgen.backbones.base import Condition
from distgen.backbones.differential_attention import DifferentialAttention, differential_attend, lambda_init
from distgen.backbones.gene_encoder import GraphGeneEncoder
from distgen.backbones.pad_transformer import PADTransformer
from distgen.testing.fixtures import tiny_batch, tiny_info, tiny_table
from distgen.types import ConditionLabels, DataInfo


def naive_differential(q1, k1, q2, k2, v, lam):
    """Reference: build both [L, L] softmax maps explicitly."""
    d = q1.shape[-1]
    a1 = torch.softmax(torch.einsum("nhid,nhjd->nhij", q1, k1) / math.sqrt(d), -1)
    a2 = torch.softmax(torch.einsum("nhid,nhjd->nhij", q2, k2) / math.sqrt(d), -1)
    return torch.einsum("nhij,nhjd->nhid", a1 - lam * a2, v)


def _graph(g=12, seed=0):
    adj = torch.rand(g, g, generator=torch.Generator().manual_seed(seed)) > 0.75
    return adj | adj.T


def _cond(batch, drop=None):
    return Condition(gene_ids=batch.gene_ids, control=batch.control, control_mask=batch.control_mask, labels=batch.labels, drop=drop)


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    params = {"d_model": 16, "heads": 2, "layers": 2, "dropout": 0.0, "gene_graph": _graph(), **kw}
    return PADTransformer(tiny_info(), **params).eval()


def test_fused_differential_attention_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    q1, k1, q2, k2, v = (torch.randn(2, 3, 7, 4, generator=g) for _ in range(5))
    lam = torch.tensor(0.37)
    ref = naive_differential(q1, k1, q2, k2, v, lam)
    torch.testing.assert_close(differential_attend(q1, k1, q2, k2, v, lam, "fused"), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(differential_attend(q1, k1, q2, k2, v, lam, "naive"), ref, atol=1e-5, rtol=1e-5)


def test_attention_module_fused_and_naive_agree_with_gradients():
    torch.manual_seed(0)
    fused = DifferentialAttention(16, 4, layer=2, impl="fused")
    naive = DifferentialAttention(16, 4, layer=2, impl="naive")
    naive.load_state_dict(fused.state_dict())
    x, c = torch.randn(3, 9, 16, requires_grad=True), torch.randn(3, 9, 16)
    a, b = fused(x, x, x, c, c), naive(x, x, x, c, c)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(a.sum(), x)[0]
    gb = torch.autograd.grad(b.sum(), x)[0]
    torch.testing.assert_close(ga, gb, atol=1e-4, rtol=1e-4)


def test_lambda_schedule_values():
    expected = [0.2000, 0.3555, 0.4707, 0.5561]  # the dossier's table for layers 0..3
    assert [lambda_init(i) for i in range(4)] == pytest.approx(expected, abs=1e-4)
    att = DifferentialAttention(8, 2, layer=3)
    lam = torch.exp(att.lambda_q1 @ att.lambda_k1) - torch.exp(att.lambda_q2 @ att.lambda_k2) + 0.8 - 0.6 * math.exp(-0.9)
    torch.testing.assert_close(att.lam(), lam)


def test_whole_backbone_fused_equals_naive():
    fused = _net(attention_impl="fused")
    naive = _net(attention_impl="naive")
    naive.load_state_dict(fused.state_dict())
    b = tiny_batch()
    t = torch.rand(3, 6)
    torch.testing.assert_close(fused(b.target, t, _cond(b)), naive(b.target, t, _cond(b)), atol=1e-4, rtol=1e-4)


def test_graph_encoder_matches_dense_masked_attention():
    torch.manual_seed(0)
    enc = GraphGeneEncoder(n_vocab=10, dim=8, heads=2, graph=True, dropout=0.0).eval()
    adj = _graph(8, seed=3)  # vocab tokens 8, 9 are outside the graph (self only)
    enc.set_graph(adj)
    ids = torch.tensor([0, 5, 9, 3])
    full = adj | torch.eye(8, dtype=torch.bool)
    allowed = torch.zeros(10, 10, dtype=torch.bool)
    allowed[:8, :8] = full
    allowed[8, 8] = allowed[9, 9] = True
    # dense reference with the same weights: nn.functional.multi_head_attention-like computation by hand
    mem = enc.norm0(enc.table.weight)
    e = mem[ids]
    q = enc.q(enc.norm_q(e)).view(4, 2, 4).transpose(0, 1)  # [h, n, dh]
    k = enc.k(mem).view(10, 2, 4).transpose(0, 1)
    v = enc.v(mem).view(10, 2, 4).transpose(0, 1)
    scores = (q @ k.transpose(-1, -2)) / 2.0
    scores = scores.masked_fill(~allowed[ids][None], float("-inf"))
    att = (scores.softmax(-1) @ v).transpose(0, 1).reshape(4, 8)
    x = e + enc.o(att)
    ref = x + enc.ff(enc.norm_ff(x))
    torch.testing.assert_close(enc(ids), ref, atol=1e-5, rtol=1e-5)


def test_gene_embedding_depends_only_on_graph_neighbours():
    torch.manual_seed(0)
    enc = GraphGeneEncoder(n_vocab=6, dim=8, heads=2, dropout=0.0).eval()
    adj = torch.zeros(6, 6, dtype=torch.bool)
    adj[0, 1] = adj[1, 0] = True
    enc.set_graph(adj)
    before = enc(torch.tensor([0]))
    with torch.no_grad():
        enc.table.weight[4] += torch.randn(8) * 3  # (a constant shift would vanish in the LayerNorm)  # not a neighbour of gene 0
    torch.testing.assert_close(enc(torch.tensor([0])), before)
    with torch.no_grad():
        enc.table.weight[1] += torch.randn(8) * 3  # a neighbour
    assert not torch.allclose(enc(torch.tensor([0])), before)


def test_gene_encoder_runs_once_per_forward_for_the_whole_batch():
    net = _net()
    calls = []
    net.genes.register_forward_hook(lambda *a: calls.append(1))
    b = tiny_batch(b=3, m=6)
    net(b.target, torch.rand(3, 6), _cond(b))
    assert len(calls) == 1


def test_equivariant_to_gene_column_order():
    """No positional encoding: permuting gene columns (with their ids) permutes the output."""
    net = _net()
    b = tiny_batch()
    t = torch.rand(3, 6)
    out = net(b.target, t, _cond(b))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    bp = b.select_genes(perm)
    torch.testing.assert_close(net(bp.target, t, _cond(bp)), out[..., perm], atol=1e-5, rtol=1e-5)


def test_gene_subsampling_uses_gene_identity():
    net = _net()
    b = tiny_batch().select_genes(torch.tensor([0, 3, 5, 7]))
    t = torch.rand(3, 6)
    out = net(b.target, t, _cond(b))
    assert out.shape == (3, 6, 4)
    other = _cond(b)
    other.gene_ids = torch.tensor([1, 2, 4, 6])
    assert not torch.allclose(net(b.target, t, other), out)
    bad = _cond(b)
    bad.gene_ids = torch.tensor([0, 3, 5, 12])
    with pytest.raises(ValueError, match="gene_ids"):
        net(b.target, t, bad)


def test_perturbation_token_is_the_gene_embedding_even_when_column_absent():
    """A perturbed gene's token comes from the gene encoder, so its table row matters even if its column is not in x."""
    net = _net(graph=False)  # (with the graph, G0 would also reach its neighbours' gene embeddings)
    b = tiny_batch().select_genes(torch.tensor([4, 5, 6, 7]))  # G0 (atom 0 of set 0) not among the columns
    t = torch.rand(3, 6)
    out = net(b.target, t, _cond(b))
    with torch.no_grad():
        net.genes.table.weight[0] += torch.randn(16) * 3
    out2 = net(b.target, t, _cond(b))
    assert not torch.allclose(out2[0], out[0])  # set 0 is perturbed by G0
    torch.testing.assert_close(out2[2], out[2])  # set 2 is a control set
    assert net.can_embed(["G0", "G7", "NOPE"]) == [True, True, False]  # G7: never perturbed, but a gene token


def test_missing_perturbation_gene_error_or_declared_extension():
    info = DataInfo(genes=tuple(f"G{i}" for i in range(12)), perturbations=("G0", "XYZ"))
    with pytest.raises(ValueError, match="missing_perturbation_genes"):
        PADTransformer(info, d_model=8, heads=2, layers=1, graph=False)
    net = PADTransformer(info, seen_perturbations=["G0"], d_model=8, heads=2, layers=1, graph=False, missing_perturbation_genes="extend")
    assert net.extra_genes == ("XYZ",) and net.genes.n_vocab == 12 + 1 + 1
    assert net.can_embed(["G0", "XYZ"]) == [True, False]  # XYZ is outside the panel and unseen
    labels = ConditionLabels.make([[1], [0, 1]])
    b = tiny_batch(b=2)
    cond = Condition(gene_ids=b.gene_ids, control=b.control, control_mask=b.control_mask, labels=labels)
    assert torch.isfinite(net(b.target, torch.rand(2, 6), cond)).all()


def test_drug_data_needs_the_table_path():
    info = DataInfo(genes=tuple(f"G{i}" for i in range(12)), perturbations=("drugA", "drugB", "drugC", "drugD"), perturbation_type="chemical")
    with pytest.raises(ValueError, match="chemical"):
        PADTransformer(info, d_model=8, heads=2, layers=1, graph=False, perturbation_encoding="gene")
    net = PADTransformer(info, seen_perturbations=["drugA"], d_model=8, heads=2, layers=1, graph=False)
    assert net.encoding == "table"
    assert net.can_embed(["drugA", "drugB", "G0"]) == [True, False, False]
    b = tiny_batch()
    assert net(b.target, torch.rand(3, 6), _cond(b)).shape == b.target.shape


@pytest.mark.parametrize("pool", ["mean", "sum", "padded_mean"])
def test_pooling_and_null_condition(pool):
    net = _net(pool=pool)
    b = tiny_batch()
    t = torch.rand(3, 6)
    drop = torch.tensor([True, False, True])
    out = net(b.target, t, _cond(b, drop))
    relabelled = _cond(b, drop)
    relabelled.labels = ConditionLabels.make([[3], [3], [0, 1]])
    out2 = net(b.target, t, relabelled)
    torch.testing.assert_close(out2[0], out[0])  # dropped sets ignore their labels
    torch.testing.assert_close(out2[2], out[2])
    assert not torch.allclose(out2[1], out[1])


def test_combination_order_does_not_matter():
    net = _net()
    b = tiny_batch(b=1)
    t = torch.rand(1, 6)
    c1, c2 = _cond(b), _cond(b)
    c1.labels, c2.labels = ConditionLabels.make([[1, 2]]), ConditionLabels.make([[2, 1]])
    torch.testing.assert_close(net(b.target, t, c1), net(b.target, t, c2), atol=1e-5, rtol=1e-5)


def test_padded_or_fewer_controls_are_drawn_from_real_ones():
    net = _net()
    b = tiny_batch()
    t = torch.rand(3, 6)
    ctrl = torch.cat([b.control[:, :3], torch.full((3, 3, 12), 1e4)], 1)
    mask = torch.tensor([[True] * 3 + [False] * 3] * 3)
    cond = Condition(gene_ids=b.gene_ids, control=ctrl, control_mask=mask, labels=b.labels)
    torch.manual_seed(0)
    out = net(b.target, t, cond)
    cond.control = torch.cat([b.control[:, :3], torch.full((3, 3, 12), -7.0)], 1)
    torch.manual_seed(0)
    torch.testing.assert_close(net(b.target, t, cond), out)
    cond.control_mask = torch.zeros(3, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match="no real control"):
        net(b.target, t, cond)


def test_standard_attention_ablation_has_no_second_map():
    net = _net(attention="standard")
    assert not hasattr(net.self_blocks[0].attn, "q2")
    diff = _net()
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in diff.parameters())


def test_graph_required_unless_disabled_and_prepare_builds_it():
    torch.manual_seed(0)
    net = PADTransformer(tiny_info(), d_model=8, heads=2, layers=1, graph_k=3).eval()
    b = tiny_batch()
    with pytest.raises(RuntimeError, match="gene graph"):
        net(b.target, torch.rand(3, 6), _cond(b))
    net.prepare(tiny_table())
    assert net.genes.has_graph
    assert torch.isfinite(net(b.target, torch.rand(3, 6), _cond(b))).all()
    with pytest.raises(ValueError, match=r"\[G, G\]"):
        net.set_gene_graph(torch.ones(5, 5, dtype=torch.bool))


def test_state_dict_carries_the_graph():
    net = _net()
    fresh = PADTransformer(tiny_info(), d_model=16, heads=2, layers=2, dropout=0.0).eval()
    assert not fresh.genes.has_graph
    fresh.load_state_dict(net.state_dict())
    b = tiny_batch()
    t = torch.rand(3, 6)
    torch.testing.assert_close(fresh(b.target, t, _cond(b)), net(b.target, t, _cond(b)))


def test_official_size_parameter_count():
    """d=512, 8 heads, 4 layers on a 5,029-gene panel vs the official state dict (its key list, which the parity harness
    checks against the official module): 60,359,169 parameters, of which the unused label table (6,000 x 512 + its
    LayerNorm), the unused p_head and p_mask_embed, and 970 rows of the 6,000-row gene table (5,030 = 5,029 genes +
    the control token are used) have no counterpart here; distgen adds one 512-d CFG null vector."""
    import math

    from distgen.models.official.scdfm import official_keys

    official = sum(math.prod(s) for s in official_keys(512, 8, 4, 6000).values())
    assert official == 60_359_169
    info = tiny_info(5029)
    with torch.device("meta"):
        net = PADTransformer(info, d_model=512, heads=8, layers=4)
    n = sum(p.numel() for p in net.parameters())
    label, p_head, surplus = 6000 * 512 + 2 * 512, (2 * 512 + 512 * 512 + 512) + 512, (6000 - 5030) * 512
    assert net.genes.table.num_embeddings == 5030
    assert n == official - label - p_head - surplus + 512 == 56_525_825


def test_segment_attention_accepts_the_mixed_dtypes_of_cuda_autocast():
    # under CUDA autocast, linear outputs are bf16 while `sum` returns float32: a buffer typed after q broke scatter
    from distgen.backbones.gene_encoder import segment_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, 2, 4, generator=g) for s in (3, 7, 7))
    seg = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    ref = segment_attention(q, k, v, seg, 3)
    for dq, dk in ((torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16), (torch.bfloat16, torch.bfloat16)):
        out = segment_attention(q.to(dq), k.to(dk), v.to(dk), seg, 3)
        torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_init_bounds_are_those_of_the_official_fused_matrices():
    # scDFM initialises Linear(2d, d) on [h; e_p] / [h_x; h_c] and the gene encoder's fused in_proj [3d, d]
    # (nn.MultiheadAttention) as whole matrices: Xavier bound sqrt(6 / (fan_in + fan_out)) of the whole matrix.
    d = 64
    net = PADTransformer(DataInfo(genes=tuple(f"g{i}" for i in range(12)), perturbations=("g1",)), d_model=d, heads=4, layers=2)
    split = {"fusion.wx": 3 * d, "fusion.wc": 3 * d, "adapters.0.w1.a": 3 * d, "adapters.1.w1.b": 3 * d, "decoder.w3.a": 3 * d,
             "decoder.w3.b": 3 * d, "genes.q": 4 * d, "genes.k": 4 * d, "genes.v": 4 * d, "genes.o": 2 * d, "fusion.out.1": 2 * d}
    mods = dict(net.named_modules())
    for name, fans in split.items():
        w = mods[name].weight
        bound = math.sqrt(6.0 / fans)
        assert float(w.detach().abs().max()) <= bound, name
        assert float(w.detach().abs().max()) > 0.97 * bound, name  # 4096 uniform draws reach the bound
        assert abs(float(w.detach().std()) - bound / math.sqrt(3)) < 0.05 * bound, name
    assert float(net.decoder.w3.a.bias.abs().max()) == 0.0 and float(net.genes.q.bias.abs().max()) == 0.0


def test_gene_encoder_copies_draw_their_own_dropout():
    enc = GraphGeneEncoder(14, 16, heads=2, dropout=0.3)
    enc.set_graph(_graph())
    ids = torch.arange(12)
    enc.eval()
    shared = enc(ids)
    assert torch.equal(enc(ids, copies=3), shared.expand(3, -1, -1))  # eval: every copy is the shared embedding
    enc.train()
    torch.manual_seed(0)
    copies = enc(ids, copies=3)
    assert copies.shape == (3, 12, 16)
    assert not torch.allclose(copies[0], copies[1]) and not torch.allclose(copies[1], copies[2])
    enc.dropout = 0.0
    enc.drop.p = enc.ff[2].p = 0.0
    assert torch.allclose(enc(ids, copies=2), shared.expand(2, -1, -1), atol=1e-6)  # no dropout: copies = shared


@pytest.mark.parametrize("mode", ["shared", "per_cell"])
def test_per_cell_gene_dropout_reaches_each_cell(mode):
    # only the gene encoder drops (the other dropouts set to 0): two identical cells of one set differ iff per_cell
    net = _net(dropout=0.2, gene_dropout=mode).train()
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.Dropout) and not name.startswith("genes."):
            mod.p = 0.0
    b = tiny_batch(b=2, m=4, pad_last=0)
    x = b.target.clone()
    x[:, 1] = x[:, 0]
    ctrl = b.control.clone()
    ctrl[:, 1] = ctrl[:, 0]
    t = torch.full((2, 4), 0.3)
    cond = Condition(gene_ids=b.gene_ids, control=ctrl, control_mask=b.control_mask, labels=b.labels)
    torch.manual_seed(1)
    out = net(x, t, cond)
    same = torch.allclose(out[:, 0], out[:, 1])
    assert same == (mode == "shared")
    out.sum().backward()  # gradients reach the gene table through the per-cell copies
    assert net.genes.table.weight.grad is not None and bool(net.genes.table.weight.grad.abs().sum() > 0)
    net.eval()
    with torch.no_grad():
        e = net(x, t, cond)
    assert torch.allclose(e[:, 0], e[:, 1])  # eval mode: no dropout anywhere


def test_per_cell_path_equals_shared_when_nothing_is_dropped():
    # the per-cell path runs (training, dropout > 0) but drops nothing: every cell must get its own set's tokens
    b = tiny_batch(b=3, m=4)
    t = torch.rand(3, 4, generator=torch.Generator().manual_seed(2))
    outs = []
    for mode in ("shared", "per_cell"):
        net = _net(seed=3, dropout=0.2, gene_dropout=mode).train()
        for mod in net.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        net.genes.dropout = 1e-12  # attention dropout that never fires, so per_cell stays on
        outs.append(net(b.target, t, _cond(b)))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)


def test_segment_attention_copies_in_chunks_equal_one_piece(monkeypatch):
    from distgen.backbones import gene_encoder as ge

    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(5, 2, 4, generator=g), torch.randn(9, 2, 4, generator=g), torch.randn(9, 2, 4, generator=g)
    seg = torch.tensor([0, 0, 1, 1, 2, 3, 3, 4, 4])
    copies = ge.PADDED_FROM_COPIES + 1  # the padded product, in chunks of copies
    whole = ge.segment_attention(q, k, v, seg, 5, copies=copies)
    monkeypatch.setattr(ge, "COPY_CHUNK_ELEMENTS", 2 * 5 * 2 * 2)  # n * K * h = 20 per copy: chunks of 2 copies (the last one of 1)
    chunked = ge.segment_attention(q, k, v, seg, 5, copies=copies)
    assert chunked.shape == (copies, 5, 2, 4) and torch.allclose(whole, chunked)
    assert torch.allclose(chunked[-1], ge.segment_attention(q, k, v, seg, 5))
    torch.manual_seed(0)
    dropped = ge.segment_attention(q, k, v, seg, 5, dropout=0.5, training=True, copies=copies)
    assert len({tuple(dropped[i].flatten().tolist()) for i in range(copies)}) > 1  # each copy its own dropout, across chunks


def test_per_cell_gene_encoder_under_checkpointing_gives_the_same_values_and_gradients():
    # with activation checkpointing the per-cell gene-encoder copies are recomputed in backward, with the same dropout draws
    b = tiny_batch(b=2, m=3)
    t = torch.rand(2, 3, generator=torch.Generator().manual_seed(4))
    results = []
    for ckpt in ("never", "always"):
        net = _net(seed=5, dropout=0.2, gene_dropout="per_cell", checkpointing=ckpt).train()
        torch.manual_seed(11)
        out = net(b.target, t, _cond(b))
        out.pow(2).sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}))
    (o1, g1), (o2, g2) = results
    torch.testing.assert_close(o1, o2)
    assert g1.keys() == g2.keys() and "genes.table.weight" in g1
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], atol=1e-6, rtol=1e-5)


def _edge_list_attention(q, k, v, seg, n, nbr, p, copies):
    """The plain formula over per-edge rows k[nbr], v[nbr] (every [E, h, d] product built whole)."""
    scores = (q[seg] * k[nbr]).sum(-1) / q.shape[-1] ** 0.5
    w = torch.exp(scores - scores.max())
    w = w / torch.zeros(n, q.shape[1], dtype=w.dtype).index_add(0, seg, w)[seg]
    wc = torch.nn.functional.dropout(w if copies is None else w.expand(copies, *w.shape), p, p > 0)
    lead = () if copies is None else (copies,)
    return torch.zeros(*lead, n, *v.shape[1:], dtype=v.dtype).index_add(len(lead), seg, wc[..., None] * v[nbr])


@pytest.mark.parametrize("copies", [None, 4, "padded"])
@pytest.mark.parametrize("memory", [False, True])
def test_segment_attention_equals_the_edge_list_formula_with_the_same_dropout_draws(copies, memory, monkeypatch):
    # values and the gradients of q, k and v against the plain formula, seg unsorted and queries 1 and 5 with no edge;
    # k, v per edge or rows of a memory read through nbr; the edge-list path in several chunks (the last one ragged)
    from distgen.backbones import gene_encoder as ge

    copies = ge.PADDED_FROM_COPIES + 1 if copies == "padded" else copies
    monkeypatch.setattr(ge, "EDGE_CHUNK_ELEMENTS", 3 * 2 * 3 * (copies or 1))  # 3 edges per chunk
    g = torch.Generator().manual_seed(1)
    n, h, d = 6, 2, 3
    seg = torch.tensor([3, 0, 0, 2, 3, 3, 0, 2, 4, 3])
    nbr = torch.tensor([4, 0, 2, 6, 1, 4, 5, 0, 3, 2]) if memory else torch.arange(len(seg))
    rows = 7 if memory else len(seg)
    q, k, v = (torch.randn(r, h, d, generator=g, dtype=torch.float64, requires_grad=True) for r in (n, rows, rows))
    torch.manual_seed(3)
    out = ge.segment_attention(q, k, v, seg, n, dropout=0.4, training=True, copies=copies, nbr=nbr if memory else None)
    torch.manual_seed(3)
    ref = _edge_list_attention(q, k, v, seg, n, nbr, 0.4, copies)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-12)
    assert torch.equal(out[..., [1, 5], :, :], torch.zeros(*out.shape[:-3], 2, h, d, dtype=out.dtype))
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((ref * weights).sum(), (q, k, v))
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-12)


def test_edge_list_functions_pass_gradcheck(monkeypatch):
    from distgen.backbones import gene_encoder as ge

    monkeypatch.setattr(ge, "EDGE_CHUNK_ELEMENTS", 8)
    g = torch.Generator().manual_seed(2)
    seg, nbr = torch.tensor([1, 0, 1, 2, 2, 0, 1]), torch.tensor([0, 3, 3, 1, 2, 0, 1])
    q, k = torch.randn(3, 2, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, 2, generator=g, dtype=torch.float64)
    w = torch.randn(2, 7, 2, generator=g, dtype=torch.float64)  # two copies of the weights
    assert torch.autograd.gradcheck(lambda a, b: ge._EdgeDot.apply(a, b, seg, nbr), (q.requires_grad_(), k.requires_grad_()))
    assert torch.autograd.gradcheck(lambda a, b: ge._EdgeSum.apply(a, b, seg, nbr, 3), (w.requires_grad_(), k))
    assert torch.autograd.gradcheck(lambda a, b: ge._EdgeSum.apply(a, b, seg, nbr, 3), (w[0].detach().requires_grad_(), k))


@pytest.mark.parametrize("copies", [None, 2])
def test_gene_encoder_trains_under_bf16_autocast(copies):
    # autocast makes the q/k/v projections bf16; the edge products accumulate in float32 and send bf16 gradients back
    torch.manual_seed(0)
    enc = GraphGeneEncoder(14, 16, heads=2, dropout=0.0)
    enc.set_graph(_graph())
    ids = torch.arange(12)
    ref = enc(ids, copies)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(ids, copies)
    out.float().square().sum().backward()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)
    grads = [p.grad for p in enc.parameters() if p.grad is not None]
    assert enc.table.weight.grad is not None and all(bool(torch.isfinite(g).all()) for g in grads)
