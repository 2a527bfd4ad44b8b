"""The methods developer's workflow: one experiment (``run``: load once -> build -> pre-flight -> fit ->
predict -> score), the prediction of held-out groups, baseline references, sweeps and the quickstart.

Stages hand each other objects (``Dataset``, models, ``Cells``, ``Report``); files are outputs only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def __getattr__(name: str) -> Any:  # the experiment pulls in torch, models and the trainer: load on first use
    if name == "run":
        from distgen.pipeline.experiment import run

        return run
    raise AttributeError(f"module 'distgen.pipeline' has no attribute {name!r}")
