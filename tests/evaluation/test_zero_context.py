"""A prediction one of whose contexts holds only zeros (the others predicted): scored per context (``score(by_context=True)``,
``distgen evaluate --celltype-col``/``--profile P --celltype-col``), it is refused with that context's cell count. Until
2026-12-07 the message said "the pred file's X holds only zeros (45 cells x 30 genes)", the count a context's
and the file's X not all zeros: the context is now named."""

import numpy as np
import pandas as pd
import pytest
import torch

from distgen.evaluation.io import ScaleMismatchError
from distgen.types import Cells

from .test_hostile_inputs import _evaluate, _files, _pair

GENES = [f"g{j}" for j in range(6)]
CONDS = (["control"] * 4 + ["A"] * 4) * 2
CONTEXTS = ["K562"] * 8 + ["RPE1"] * 8


def test_score_names_the_context_whose_prediction_is_all_zero():
    from distgen.evaluation.score import score

    x = np.log1p(np.random.default_rng(0).poisson(3, (16, 6))).astype(np.float32)
    truth = Cells(torch.from_numpy(x), CONDS, GENES, contexts=CONTEXTS)
    zeroed = x.copy()
    zeroed[8:] = 0.0
    pred = Cells(torch.from_numpy(zeroed), CONDS, GENES, contexts=CONTEXTS)
    with pytest.raises(ScaleMismatchError) as err:
        score(pred, truth, ceiling=False, metrics=["mse"], by_context=True)
    assert "X holds only zeros in context 'RPE1' (8 cells x 6 genes)" in str(err.value)


@pytest.mark.parametrize("profile", [None, "cell-eval-0.8.2"])
def test_evaluate_by_celltype_names_the_context_whose_prediction_is_all_zero(tmp_path, capsys, profile):
    pred, real = _pair()
    for a in (pred, real):
        a.obs["celltype"] = pd.Categorical(["B" if i % 2 else "K" for i in range(a.n_obs)])
    pred.X[(pred.obs["celltype"] == "K").to_numpy()] = 0.0
    pp, rp = _files(tmp_path, pred, real)
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling", "--metrics", "mse"]
    assert _evaluate(tmp_path, pp, rp, "--celltype-col", "celltype", *more) == 2
    err = capsys.readouterr().err
    assert "X holds only zeros" in err and "(45 cells x 30 genes)" in err and "Traceback" not in err
    assert err.count("'K'") == 1  # named once (review: the --profile path said "context 'K' of 'celltype': ... in context 'K'")
