"""Conditioners: perturbation and covariate embedders."""

from distgen.conditioners.base import Conditioner, pool_slots
from distgen.registry import make_registry

conditioners = make_registry("conditioners", Conditioner)

from distgen.conditioners import covariate, embedding_table, gene_vocab, onehot  # noqa: E402,F401

__all__ = ["Conditioner", "conditioners", "pool_slots"]
