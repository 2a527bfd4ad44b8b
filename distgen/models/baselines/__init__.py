"""Baseline models that calibrate every evaluation (negative baselines and ceilings).

They are registered in ``distgen.models.base.models`` (``control``, ``mean_perturbation``,
``additive``, ``linear``) and loaded from there on first use.
"""
