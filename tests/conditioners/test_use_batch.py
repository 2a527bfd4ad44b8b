"""``use_batch`` of every built-in conditioner is what its ``embeds_batches`` capability says (the pre-flight reads it)."""

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
