"""A run's warnings reach its folder: every UserWarning shown while ``distgen run`` fits, trains and predicts is a note
of its evaluation (summary.json, summary.md), so a user who reads the folder later sees it (``distgen.warned``)."""

import json
import warnings

import numpy as np
import pytest

from distgen.config import InertSettingWarning
from distgen.models import models
from distgen.models.base import FittedModel
from distgen.pipeline.experiment import run
from distgen.warned import recorded_warnings

DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}
SAID = "warner left 3 populations out of its fit"


class Warner(FittedModel):
    """A fitted model as a plugin author writes one: it tells the user something with ``warnings.warn`` and nothing else."""

    def __init__(self, info) -> None:
        self.info = info

    def fit(self, train):
        warnings.warn(SAID, UserWarning, stacklevel=2)
        warnings.warn("an API this model calls is deprecated", DeprecationWarning, stacklevel=2)
        return self

    def predict(self, control, control_mask, labels):
        return control


@pytest.fixture
def warner():
    models.add("test_warner", Warner)
    yield "test_warner"
    models.unregister("test_warner")


def _emit(message: str, category: type[Warning] = UserWarning) -> None:
    warnings.warn(message, category, stacklevel=2)  # always from this line: the default filter shows it once per place


def test_recorded_warnings_keeps_user_warnings_once_and_still_shows_them():
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        with recorded_warnings() as notes:
            for _ in range(2):
                _emit("a population was dropped")
            _emit("train.lr has no effect", InertSettingWarning)
            _emit("old API", DeprecationWarning)
            _emit("overflow", RuntimeWarning)
        assert notes == ["a population was dropped", "train.lr has no effect"]
        assert [str(w.message) for w in shown] == ["a population was dropped", "train.lr has no effect", "old API", "overflow"]
        with recorded_warnings() as again:  # a second run in this process: shown once per place already, recorded again
            _emit("a population was dropped")
        assert again == ["a population was dropped"]


def test_a_warning_the_user_silenced_is_not_recorded():
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("ignore")
        with recorded_warnings() as notes:
            _emit("a population was dropped")
    assert notes == [] and shown == []


def test_a_run_writes_a_models_warnings_and_its_inert_settings_into_its_notes(tmp_path, warner):
    with pytest.warns(UserWarning, match=SAID):  # still shown as before
        summary = run({"model": {"name": warner}, "data": DATA, "train": {"lr": 0.1}}, tmp_path / "r", progress=False,
                      metrics=["mse"], plots=False)
    written = json.loads((tmp_path / "r" / "eval" / "summary.json").read_text())["notes"]
    page = (tmp_path / "r" / "eval" / "summary.md").read_text()
    inert = [n for n in written if n.startswith("train.lr has no effect")]
    assert SAID in written and written.count(SAID) == 1 and len(inert) == 1 and summary["notes"] == written
    assert f"- {SAID}" in page and f"- {inert[0]}" in page
    assert not any("deprecated" in n for n in written)


class Reporting(FittedModel):
    """A fitted model that reports how its fit went (``diagnostics``), as the Bayesian plugin does."""

    def __init__(self, info) -> None:
        self.info = info
        self.diagnostics: dict = {}

    def fit(self, train):
        self.diagnostics = {"method": "test", "loss_trace": [3.0, 2.0, 1.5], "converged": False, "n_cells": len(train)}
        return self

    def predict(self, control, control_mask, labels):
        return control


def test_a_fitted_models_diagnostics_are_written_to_the_run_folder(tmp_path):
    models.add("test_reporting", Reporting)
    try:
        run({"model": {"name": "test_reporting"}, "data": DATA}, tmp_path / "r", progress=False, metrics=["mse"], plots=False)
        run({"model": {"name": "additive"}, "data": DATA}, tmp_path / "plain", progress=False, metrics=["mse"], plots=False)
    finally:
        models.unregister("test_reporting")
    fit = json.loads((tmp_path / "r" / "fit.json").read_text())
    assert fit["loss_trace"] == [3.0, 2.0, 1.5] and fit["converged"] is False and fit["n_cells"] > 0
    assert not (tmp_path / "plain" / "fit.json").exists()  # a model without diagnostics: no file


def test_a_warning_of_the_data_loading_is_one_note_of_the_run(tmp_path):
    """What loading the data warned is a note of the dataset (``data: ...``, from ``Dataset.notes``) and was also
    recorded as a warning the run showed: the same message twice in the report. It is there once."""
    from tests.data.conftest import make_adata

    adata = make_adata(counts=False)
    ctx = adata.obs["cell_type"].astype(str).to_numpy().copy()
    ctx[np.flatnonzero(ctx == "ct1")[::2]] = "ct1 "  # half written with a trailing space: read as ct1, and loading says so
    adata.obs["cell_type"] = ctx
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    data = {"dataset": str(path), "schema": {"perturbation_col": "condition", "control_labels": ["control"],
            "context_cols": ["cell_type"], "batch_col": "donor"}, "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8}
    with pytest.warns(UserWarning, match="surrounding spaces"):
        run({"model": {"name": "additive"}, "data": data}, tmp_path / "r", progress=False, metrics=["mse"], plots=False)
    written = json.loads((tmp_path / "r" / "eval" / "summary.json").read_text())["notes"]
    about_spaces = [n for n in written if "surrounding spaces" in n]
    assert len(about_spaces) == 1 and about_spaces[0].startswith("data: ")
