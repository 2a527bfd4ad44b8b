"""A run trained before a preset's change that computes the same numbers resumes under the preset's name (review, 2026-12-07).

Round 2 set ``gene_dropout: shared`` in ``scdfm-small`` (it had ``per_cell`` at ``dropout: 0``, where both draw no
dropout: 20 training steps gave bit-identical losses, weights, optimizer and RNG states at 1b7f682 and after). A run
trained before, resumed with ``distgen train scdfm-small --out RUN --resume``, was refused as "written under a different
config (model.backbone.gene_dropout: 'per_cell' -> 'shared')", and its own config.yaml now warns that per_cell has no
effect there. The two spellings are one trajectory where the dropout draws nothing, and only there.
"""

from __future__ import annotations

import pytest

from distgen.train.checkpoint import CheckpointConfigError, check_state_compatible, fingerprint


def _config(gene_dropout: str, dropout: float = 0.0, graph: bool = True, name: str = "pad_transformer") -> dict:
    backbone = {"name": name, "d_model": 64, "dropout": dropout, "graph": graph, "graph_k": 20, "gene_dropout": gene_dropout}
    return {"model": {"name": "flow", "backbone": backbone}, "data": {"set_size": 24}, "train": {"steps": 20, "lr": 1e-3}}


def _state(config: dict) -> dict:
    return {"fingerprint": fingerprint(config), "fingerprint_config": config}


@pytest.mark.parametrize("dropout, graph", [(0.0, True), (0.1, False), (0.0, False)])
def test_per_cell_and_shared_where_nothing_is_drawn_resume_each_other(tmp_path, dropout, graph):
    for saved, now in (("per_cell", "shared"), ("shared", "per_cell")):
        current, stored = _config(now, dropout, graph), _state(_config(saved, dropout, graph))
        assert stored["fingerprint"] != fingerprint(current)  # the two configs differ: only the table (SAME_COMPUTATION) lets this resume
        check_state_compatible(tmp_path, stored, current, fingerprint(current))  # raises CheckpointConfigError before


def test_per_cell_and_shared_with_dropout_drawn_are_other_trajectories(tmp_path):
    current = _config("shared", 0.1, True)
    with pytest.raises(CheckpointConfigError, match=r"gene_dropout: 'per_cell' -> 'shared'"):
        check_state_compatible(tmp_path, _state(_config("per_cell", 0.1, True)), current, fingerprint(current))
    # another change beside it is still refused, and named
    current = {**_config("shared"), "train": {"steps": 20, "lr": 2e-3}}
    with pytest.raises(CheckpointConfigError, match=r"train\.lr: 0\.001 -> 0\.002"):
        check_state_compatible(tmp_path, _state(_config("per_cell")), current, fingerprint(current))
