"""Which effect terms the model has, and which terms a condition is made of.

Terms exist only for what training data can inform: an effect per seen atom, an interaction per
atom pair seen together in a combination, a perturbation x context interaction per (atom, context)
seen together (only when training spans more than one context), a baseline per seen context and a
random effect per seen batch. A query condition that needs a term training never saw takes that
term from its prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from distgen_bayes.populations import Populations


@dataclass(frozen=True)
class Terms:
    """The terms of one condition: positions of seen terms and keys of unseen ones."""

    atoms: list[int] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)
    atom_contexts: list[int] = field(default_factory=list)
    new_atoms: list[int] = field(default_factory=list)
    new_pairs: list[tuple[int, int]] = field(default_factory=list)
    new_atom_contexts: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Design:
    """Index of the model's terms (ids are into the ``DataInfo`` vocabularies)."""

    atoms: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    atom_contexts: tuple[tuple[int, int], ...]
    contexts: tuple[int, ...]
    batches: tuple[int, ...]
    interactions: bool = True

    @staticmethod
    def from_populations(pops: Populations, interactions: bool = True, context_interactions: bool = True) -> Design:
        ctx = pops.context.tolist()
        seen_ctx = sorted(set(ctx))
        pairs = sorted({p for s in pops.atoms for p in combinations(s, 2)}) if interactions else []
        use_ac = context_interactions and len(seen_ctx) > 1
        ac = sorted({(a, c) for s, c in zip(pops.atoms, ctx) for a in s}) if use_ac else []
        return Design(
            atoms=tuple(sorted({a for s in pops.atoms for a in s})),
            pairs=tuple(pairs),
            atom_contexts=tuple(ac),
            contexts=tuple(seen_ctx),
            batches=tuple(sorted(set(pops.batch.tolist()))),
            interactions=interactions,
        )

    @property
    def has_context_interactions(self) -> bool:
        return len(self.atom_contexts) > 0

    def terms(self, atom_set: tuple[int, ...], context: int) -> Terms:
        """The terms of condition ``atom_set`` in ``context``."""
        a_pos = {a: i for i, a in enumerate(self.atoms)}
        p_pos = {p: i for i, p in enumerate(self.pairs)}
        ac_pos = {p: i for i, p in enumerate(self.atom_contexts)}
        t = Terms()
        for a in atom_set:
            (t.atoms.append(a_pos[a]) if a in a_pos else t.new_atoms.append(a))
            if self.has_context_interactions:
                key = (a, context)
                (t.atom_contexts.append(ac_pos[key]) if key in ac_pos else t.new_atom_contexts.append(key))
        if self.interactions:
            for p in combinations(atom_set, 2):
                (t.pairs.append(p_pos[p]) if p in p_pos else t.new_pairs.append(p))
        return t

    def matrices(self, pops: Populations) -> dict[str, np.ndarray]:
        """Design matrices of the training populations (float32 indicators, int32 indices)."""
        n = len(pops)
        x_atom = np.zeros((n, len(self.atoms)), np.float32)
        x_pair = np.zeros((n, len(self.pairs)), np.float32)
        x_ac = np.zeros((n, len(self.atom_contexts)), np.float32)
        for i, (s, c) in enumerate(zip(pops.atoms, pops.context.tolist())):
            t = self.terms(s, c)
            x_atom[i, t.atoms] = 1.0
            x_pair[i, t.pairs] = 1.0
            x_ac[i, t.atom_contexts] = 1.0
        c_pos = {c: i for i, c in enumerate(self.contexts)}
        b_pos = {b: i for i, b in enumerate(self.batches)}
        batch = [b_pos[b] for b in pops.batch.tolist()]
        groups = [[p for p in range(n) if batch[p] == j] for j in range(len(self.batches))]
        width = max(len(g) for g in groups)
        members = np.zeros((len(groups), width), np.int32)
        member_mask = np.zeros((len(groups), width), np.float32)
        for j, g in enumerate(groups):
            members[j, : len(g)] = g
            member_mask[j, : len(g)] = 1.0
        return {
            "x_atom": x_atom,
            "x_pair": x_pair,
            "x_ac": x_ac,
            "context": np.array([c_pos[c] for c in pops.context.tolist()], np.int32),
            "batch": np.array(batch, np.int32),
            "members": members,
            "member_mask": member_mask,
        }
