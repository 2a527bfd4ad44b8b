"""``use_batch`` / ``use_context`` of every built-in conditioner is what its ``embeds_batches`` / ``embeds_contexts`` capability says
(the pre-flight reads them)."""

import dataclasses

import pytest
import torch

from distgen.testing.checks import make
from distgen.testing.fixtures import tiny_labels


@pytest.mark.parametrize("use_batch", [True, False])
@pytest.mark.parametrize("name", ["covariate", "embedding_table", "gene_vocab", "onehot"])
def test_use_batch_is_declared_as_embeds_batches(name, use_batch):
    c = make("conditioners", name, use_batch=use_batch)
    assert c.capabilities.embeds_batches is use_batch
    labels = tiny_labels(4)
    swapped = dataclasses.replace(labels, batch=1 - labels.batch)
    assert (not torch.allclose(c(labels), c(swapped))) is use_batch


@pytest.mark.parametrize("use_context", [True, False])
@pytest.mark.parametrize("name", ["covariate", "embedding_table", "gene_vocab", "onehot"])
def test_use_context_is_declared_as_embeds_contexts(name, use_context):
    c = make("conditioners", name, use_context=use_context)
    assert c.capabilities.embeds_contexts is use_context
    labels = tiny_labels(4)
    swapped = dataclasses.replace(labels, context=1 - labels.context)
    assert (not torch.allclose(c(labels), c(swapped))) is use_context


def test_a_context_table_is_no_learned_row_per_context():
    """Contexts read from frozen vectors: a held-out context has its own vector, nothing untrained to refuse."""
    c = make("conditioners", "covariate", context_table={"ctxA": [1.0, 0.0], "ctxB": [0.0, 1.0]})
    assert c.capabilities.embeds_contexts is False
    labels = tiny_labels(4)
    assert not torch.allclose(c(labels), c(dataclasses.replace(labels, context=1 - labels.context)))
