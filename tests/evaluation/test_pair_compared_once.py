"""The prediction/truth pair's scales are compared once.

``distgen evaluate`` (``pipeline.evaluate.evaluate_files``) compares the pair in ``normalization.check_files``
(``FileChecks.pair``) and hands that ``FileChecks`` to ``score_checked``, which does not compare a pooled pair again. The
public ``score`` (``Cells`` read by the caller) compares it, once, and has no argument that skips it; each context of
several is still compared on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import distgen.evaluation.io as io
import distgen.evaluation.normalization as N
from distgen.evaluation.io import ScaleMismatchError
from distgen.types.cells import Cells


def _pair(counts_pred: bool = False, seed: int = 3):
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(30)]
    labels = np.array(["ctrl"] * 30 + ["A"] * 30 + ["B"] * 30)

    def lognorm(m):
        tot = m.sum(1, keepdims=True)
        tot[tot == 0] = 1
        return np.log1p(m / tot * 1e4).astype(np.float32)

    real = rng.poisson(2.0, (90, 30)).astype(np.float32)
    pred = rng.poisson(2.0, (90, 30)).astype(np.float32)
    pred_x = pred if counts_pred else lognorm(pred)
    return (Cells(torch.as_tensor(pred_x), labels, genes, control="ctrl"),
            Cells(torch.as_tensor(lognorm(real)), labels, genes, control="ctrl"))


def _count(monkeypatch) -> list[int]:
    calls: list[int] = []
    same = io.check_same_scale

    def counted(*a, **k):
        calls.append(1)
        return same(*a, **k)

    monkeypatch.setattr(io, "check_same_scale", counted)
    monkeypatch.setattr(N, "check_same_scale", counted)
    return calls


def _write(cells: Cells, path, celltype=None) -> str:
    import anndata as ad
    import pandas as pd

    obs = {"perturbation": cells.conditions, **({"celltype": celltype} if celltype is not None else {})}
    a = ad.AnnData(cells.X.numpy(), obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(len(cells))]),
                   var=pd.DataFrame(index=list(cells.genes)))
    a.write_h5ad(path)
    return str(path)


def test_evaluate_files_compares_the_pair_once(monkeypatch, tmp_path):
    """Not 2 comparisons (check_files, then score's eval_data)."""
    from distgen.pipeline.evaluate import evaluate_files

    pred, real = _pair()
    p, r = _write(pred, tmp_path / "pred.h5ad"), _write(real, tmp_path / "real.h5ad")
    calls = _count(monkeypatch)
    evaluate_files(p, r, baselines=[], ceiling=False, make_plots=False, metric_names=["mse"])
    assert len(calls) == 1


def test_score_on_cells_still_compares_the_pair_once(monkeypatch):
    from distgen.evaluation.score import score

    pred, real = _pair()
    calls = _count(monkeypatch)
    score(pred, real, ceiling=False, metrics=["mse"])
    assert len(calls) == 1


def test_score_on_cells_still_refuses_a_pair_on_two_scales():
    from distgen.evaluation.score import score

    pred, real = _pair(counts_pred=True)
    with pytest.raises(ScaleMismatchError, match="scale"):
        score(pred, real, ceiling=False, metrics=["mse"])


def test_evaluate_files_still_refuses_a_pair_on_two_scales(tmp_path):
    from distgen.pipeline.evaluate import evaluate_files

    pred, real = _pair(counts_pred=True)
    p, r = _write(pred, tmp_path / "pred.h5ad"), _write(real, tmp_path / "real.h5ad")
    with pytest.raises(ScaleMismatchError):
        evaluate_files(p, r, baselines=[], ceiling=False, make_plots=False, metric_names=["mse"])


def test_score_has_no_argument_that_skips_the_comparison():
    """A counts prediction against a log-normalised truth: ``score(pair_checked=True)`` (a keyword for the pipeline) scored
    it without a word; no argument of the public ``score`` skips the comparison now."""
    import inspect

    from distgen.evaluation.score import score

    pred, real = _pair(counts_pred=True)
    with pytest.raises(TypeError, match="pair_checked"):
        score(pred, real, ceiling=False, metrics=["mse"], pair_checked=True)
    assert not {"pair_checked", "checks"} & set(inspect.signature(score).parameters)


def test_the_pipeline_entry_still_compares_each_context_of_several(monkeypatch):
    """The files' FileChecks covers the whole files only: each context of several is compared on its own."""
    from distgen.evaluation.normalization import FileChecks
    from distgen.evaluation.score import score_checked

    pred, real = _pair()
    ctx = np.array(["t1", "t2"] * 45)
    pred = Cells(pred.X, pred.conditions, pred.genes, control="ctrl", contexts=ctx)
    real = Cells(real.X, real.conditions, real.genes, control="ctrl", contexts=ctx)
    calls = _count(monkeypatch)
    score_checked(FileChecks(pair=True), pred, real, ceiling=False, metrics=["mse"])
    assert len(calls) == 2


def test_evaluate_files_of_two_contexts_compares_the_files_once_and_each_context(monkeypatch, tmp_path):
    from distgen.pipeline.evaluate import evaluate_files

    pred, real = _pair()
    ctx = np.array(["t1", "t2"] * 45)
    p = _write(Cells(pred.X, pred.conditions, pred.genes, control="ctrl", contexts=ctx), tmp_path / "pred.h5ad", ctx)
    r = _write(Cells(real.X, real.conditions, real.genes, control="ctrl", contexts=ctx), tmp_path / "real.h5ad", ctx)
    calls = _count(monkeypatch)
    report = evaluate_files(p, r, baselines=[], ceiling=False, make_plots=False, metric_names=["mse"], celltype_col="celltype")
    assert report.summary["contexts"] == ["t1", "t2"] and len(calls) == 3


def test_the_pipeline_entry_without_checks_compares_the_pair(monkeypatch):
    from distgen.evaluation.score import score_checked

    pred, real = _pair(counts_pred=True)
    with pytest.raises(ScaleMismatchError, match="scale"):
        score_checked(None, pred, real, ceiling=False, metrics=["mse"])


def test_score_lists_the_pipeline_entrys_parameters_but_checks():
    """``score`` and the pipeline's entry take the same parameters (names, kinds, defaults, annotations) but ``checks``:
    a keyword added to one and not the other fails here."""
    import inspect

    from distgen.evaluation.score import score, score_checked

    whole = list(inspect.signature(score_checked).parameters.values())
    assert whole[0].name == "checks"
    assert list(inspect.signature(score).parameters.values()) == whole[1:]
    assert score.__name__ == "score" and "checks" not in score.__annotations__


def test_score_passes_every_argument_to_the_pipeline_entry_with_checks_none(monkeypatch):
    """``score`` hands each of its arguments, as given, to ``score_checked`` with ``checks`` None: a keyword forwarded
    under another name, dropped, or left at its default fails here."""
    import importlib
    import inspect

    S = importlib.import_module("distgen.evaluation.score")  # the module: distgen.evaluation.score is the function
    got = {}

    def entry(checks, pred, truth, references=None, **kwargs):
        got.update(checks=checks, pred=pred, truth=truth, references=references, **kwargs)
        return "report"

    params = list(inspect.signature(S.score).parameters.values())
    given = {p.name: object() for p in params}  # a value no default equals
    monkeypatch.setattr(S, "score_checked", entry)
    positional = [given[p.name] for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert S.score(*positional, **{p.name: given[p.name] for p in params if p.kind is p.KEYWORD_ONLY}) == "report"
    assert got == {"checks": None, **given}


def test_a_wrong_call_of_score_is_worded_for_score():
    """A wrong call names ``score`` and counts its own parameters, not the pipeline's entry's (whose ``checks`` would be
    counted among the positional arguments)."""
    from distgen.evaluation.normalization import FileChecks
    from distgen.evaluation.score import score

    pred, real = _pair(counts_pred=True)
    with pytest.raises(TypeError, match=r"^score\(\) takes from 2 to 3 positional arguments but 4") as e:
        score(pred, real, None, FileChecks(pair=True), ceiling=False, metrics=["mse"])  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"^score\(\) got an unexpected keyword argument 'pair_checked'"):
        score(pred, real, ceiling=False, metrics=["mse"], pair_checked=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^score\(\) missing 1 required positional argument: 'truth'"):
        score(pred)  # type: ignore[call-arg]
    assert "score_checked" not in str(e.value)


def _documented(doc: str) -> list[str]:
    """The names a numpy-style docstring's ``Parameters`` section documents (``pred, truth`` gives both)."""
    import inspect

    lines = inspect.cleandoc(doc).splitlines()
    start = lines.index("Parameters") + 2  # past the dashes
    names = []
    for line in lines[start:]:
        if line and not line[0].isspace():
            if line.endswith(("Returns", "Raises")) or set(line) == {"-"}:
                break
            names += [n.strip() for n in line.split(",")]
    return names


def test_the_help_of_score_documents_only_its_own_parameters():
    """``help(score)`` showed a ``checks`` entry (the pipeline entry's first parameter, which ``score`` does not take)
    among its parameters: the docstring was ``score_checked``'s. Every parameter it documents is one of its own, and the
    pipeline's entry still documents ``checks``."""
    import inspect
    import pydoc

    from distgen.evaluation.score import score, score_checked

    own = set(inspect.signature(score).parameters)
    documented = _documented(score.__doc__ or "")
    assert documented and set(documented) <= own, set(documented) - own
    assert "checks" in _documented(score_checked.__doc__ or "")
    text = pydoc.render_doc(score, renderer=pydoc.plaintext)
    assert "score(pred" in text and "FileChecks" not in text and "score_checked" not in text
