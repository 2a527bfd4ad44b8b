"""benchmarks/scdfm_official_loop.py: the official vocabulary layout and mask built over distgen's gene panel."""

from types import SimpleNamespace

import numpy as np

from benchmarks.scdfm_official_loop import build_mask, build_vocab


def test_vocab_is_specials_then_sorted_genes_with_extra_perturbed_genes():
    vocab = build_vocab(["g2", "g0", "g1"], ["p9", "g1"])
    assert list(vocab) == ["<pad>", "<cls>", "<mask>", "control", "g0", "g1", "g2", "p9"]
    assert list(vocab.values()) == list(range(8))


def test_mask_puts_the_graph_on_vocabulary_rows_and_extra_tokens_see_only_themselves():
    genes = ["g2", "g0", "g1"]  # data column order differs from vocabulary order
    vocab = build_vocab(genes, ["p9"])
    blocked = np.ones((3, 3), dtype=bool)
    np.fill_diagonal(blocked, False)
    blocked[0, 2] = blocked[2, 0] = False  # g2 <-> g1 (data columns 0 and 2)
    utils = SimpleNamespace(build_gene_coexpression_graph=lambda x, **kw: blocked)
    mask = build_mask(utils, np.zeros((5, 3)), genes, vocab)
    allowed = {(a, b) for a in vocab for b in vocab if not mask[vocab[a], vocab[b]]}
    assert ("g2", "g1") in allowed and ("g1", "g2") in allowed and ("g0", "g1") not in allowed
    assert {b for a, b in allowed if a == "p9"} == {"p9"} and {b for a, b in allowed if a == "control"} == {"control"}
    assert all((t, t) in allowed for t in vocab)
