"""The spread scores in an evaluation: summary.json["spread"] and summary.md's section, when the truth has batches."""

import json
import math

import numpy as np
import pytest
import torch

from distgen.evaluation.score import score
from distgen.types import Cells


def _cells(seed, donors=("d1", "d2", "d3"), n=30, genes=6, flat=False):
    g = torch.Generator().manual_seed(seed)
    xs, conds, bats = [], [], []
    for i, d in enumerate(donors):
        shift = 0.0 if flat else 1.5 * (i - 1.0)
        xs += [torch.randn(n, genes, generator=g).abs() + 2.0 + shift, torch.randn(n, genes, generator=g).abs() + shift]
        conds += ["stim"] * n + ["control"] * n
        bats += [d] * (2 * n)
    x = torch.cat(xs).clamp_min(0)
    return Cells(x, np.asarray(conds, dtype=object), tuple(f"g{i}" for i in range(genes)), None, np.asarray(bats, dtype=object), "control")


def test_score_reports_spread_when_the_truth_has_batches(tmp_path):
    truth = _cells(0)
    pred = _cells(1)
    report = score(pred, truth, {"control": truth}, metrics=["mse"], ceiling=False)
    spread = report.summary["spread"]
    assert list(spread["rows"]) == ["stim"]
    assert spread["kernel"] == "energy"
    assert set(spread["means"]) == {"model", "control", "model_collapsed", "control_collapsed", "split_half"}
    assert spread["means"]["model_collapsed"]["spread_ratio"] == 0.0
    assert 0.5 < spread["means"]["model"]["spread_ratio"] < 1.5
    report.write(tmp_path, make_plots=False)
    md = (tmp_path / "summary.md").read_text()
    assert "## Spread across batches" in md and "| split_half | positive |" in md
    assert json.loads((tmp_path / "summary.json").read_text())["spread"]["rows"]["stim"]["n_real"] == 3


def test_no_spread_without_batches_and_nan_with_reason_when_batches_do_not_differ(tmp_path):
    one = _cells(0, donors=("d1",))
    assert "spread" not in score(_cells(1, donors=("d1",)), one, metrics=["mse"], ceiling=False).summary
    truth = _cells(0, flat=True)  # donors drawn from one law: the real spread is estimated near 0
    flat = truth.subset(np.flatnonzero(truth.batches == "d1"))
    same = Cells.concat([flat.relabelled(batches=np.asarray([d] * len(flat.conditions), dtype=object)) for d in ("d1", "d2", "d3")])
    spread = score(_cells(1), same, metrics=["mse"], ceiling=False).summary["spread"]  # three identical real batches
    row = spread["rows"]["stim"]["model"]
    assert math.isnan(row["spread_ratio"]) and "do not differ" in row["note"]


def _files(tmp_path, column):
    import anndata as ad
    import pandas as pd

    paths = {}
    for name, seed in (("pred", 1), ("real", 0)):
        c = _cells(seed)
        obs = pd.DataFrame({"condition": c.conditions.astype(str), column: c.batches.astype(str)},
                           index=[f"{name}{i}" for i in range(len(c.conditions))])
        paths[name] = tmp_path / f"{name}.h5ad"
        ad.AnnData(np.log1p(c.X.numpy()), obs=obs, var=pd.DataFrame(index=list(c.genes))).write_h5ad(paths[name])
    return paths


def test_files_name_their_batch_column(tmp_path):
    """A user's files keep donors in their own column: --batch-col names it (default: distgen's own 'batch' column);
    without it the donors were pooled and no spread was scored, without a word."""
    from distgen.cli import main
    from distgen.errors import InputDataError
    from distgen.pipeline.evaluate import evaluate

    paths = _files(tmp_path, "donor")
    base = dict(metric_names=["mse"], ceiling=False, make_plots=False, progress=False, baselines=["control"])
    assert "spread" not in evaluate(str(paths["pred"]), str(paths["real"]), **base).summary
    report = evaluate(str(paths["pred"]), str(paths["real"]), batch_col="donor", **base)
    assert report.summary["spread"]["rows"]["stim"]["n_real"] == 3
    try:
        evaluate(str(paths["pred"]), str(paths["real"]), batch_col="plate", **base)
    except InputDataError as err:
        assert "batch column 'plate'" in str(err)
    else:
        raise AssertionError("a batch column the files lack was accepted")
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(paths["pred"]), "--real", str(paths["real"]), "--out", str(out), "--batch-col", "donor",
                 "--metrics", "mse", "--no-ceiling", "--baselines", "control", "--quiet"]) == 0
    assert "## Spread across batches" in (out / "summary.md").read_text()
    page = (out / "report.html").read_text()
    assert '<section id="spread">' in page and "<td>split_half</td><td>positive</td>" in page



def test_a_file_scored_against_cells_in_memory_reads_its_batch_column_too(tmp_path):
    """``distgen.evaluate(pred=Cells, truth=file, batch_col=...)`` reads the file beside the cells (``layout.read_beside``,
    the dose rule of files against populations): it took no batch column and failed with a TypeError."""
    import anndata as ad

    from distgen.data import layout
    from distgen.pipeline.evaluate import evaluate

    paths = _files(tmp_path, "donor")
    pred = layout.read(ad.read_h5ad(paths["pred"]), batch_col="donor", name="pred")
    report = evaluate(pred, str(paths["real"]), batch_col="donor", metric_names=["mse"], ceiling=False, make_plots=False,
                      progress=False, baselines=["control"])
    assert report.summary["spread"]["rows"]["stim"]["n_real"] == 3


def test_spread_on_off_and_auto_over_its_budget_say_what_they_did(tmp_path, monkeypatch):
    """spread='off' scores no spread and says nothing; 'auto' over its budget skips it with one note (summary.json and
    summary.md) naming the estimate and how to ask for it; 'on' scores it whatever the budget; True/False read as on/off."""
    import distgen.evaluation.spread as sp

    truth, pred = _cells(0), _cells(1)
    base = dict(metrics=["mse"], ceiling=False)
    off = score(pred, truth, {"control": truth}, spread="off", **base).summary
    assert "spread" not in off and not any("spread" in n for n in off["notes"])
    assert "spread" in score(pred, truth, {"control": truth}, **base).summary  # auto, within the default budget
    monkeypatch.setattr(sp, "SPREAD_BUDGET", 0)
    report = score(pred, truth, {"control": truth}, spread="auto", **base)
    assert "spread" not in report.summary
    said = [n for n in report.summary["notes"] if n.startswith("spread scores not computed")]
    assert len(said) == 1 and "1 (condition, context) group with several batches" in said[0] and "--spread on" in said[0]
    report.write(tmp_path, make_plots=False)
    assert "spread scores not computed" in (tmp_path / "summary.md").read_text()
    assert any(n.startswith("spread scores not computed") for n in json.loads((tmp_path / "summary.json").read_text())["notes"])
    for on in ("on", True):
        assert score(pred, truth, {"control": truth}, spread=on, **base).summary["spread"]["rows"]["stim"]["n_real"] == 3
    assert "spread" not in score(pred, truth, {"control": truth}, spread=False, **base).summary
    with pytest.raises(ValueError, match="spread must be one of auto, on, off"):
        score(pred, truth, spread="yes", **base)


def test_spread_option_of_the_cli_the_api_and_a_run_config(tmp_path):
    """--spread off/on on the command line, spread= in distgen.evaluate (refused before any file is read when unknown) and
    evaluate: {spread: ...} in a run config (YAML's on/off are booleans: taken as such)."""
    import yaml

    from distgen.cli import main
    from distgen.config import ConfigError
    from distgen.pipeline.evaluate import evaluate
    from distgen.pipeline.experiment import evaluate_section

    paths = _files(tmp_path, "batch")
    args = ["evaluate", "--pred", str(paths["pred"]), "--real", str(paths["real"]), "--metrics", "mse", "--no-ceiling",
            "--baselines", "control", "--quiet", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "off"), "--spread", "off"]) == 0
    assert "spread" not in json.loads((tmp_path / "off" / "summary.json").read_text())
    assert main([*args, "--out", str(tmp_path / "on"), "--spread", "on"]) == 0
    assert json.loads((tmp_path / "on" / "summary.json").read_text())["spread"]["rows"]["stim"]["n_real"] == 3
    with pytest.raises(ConfigError, match="spread must be one of"):
        evaluate(str(tmp_path / "missing.h5ad"), str(paths["real"]), spread="sometimes")
    for text, mode in (("off", "off"), ("on", "on"), ("auto", "auto"), ("false", "off")):
        assert evaluate_section(yaml.safe_load(f"evaluate: {{spread: {text}}}"))["spread"] == mode
    with pytest.raises(ConfigError, match=r"evaluate\.spread must be one of"):
        evaluate_section({"evaluate": {"spread": "maybe"}})


@pytest.mark.parametrize("missing", [np.nan, "", "NA"])
def test_a_cell_without_a_batch_label_is_refused_not_read_as_a_donor(tmp_path, missing):
    """A file's batch column with missing values (NaN, empty, 'NA') was read as a batch 'nan' (or ''): the unlabelled cells
    became one more donor population and moved every spread score, without a word. The run's loader refuses them
    (``handle_missing_labels``); the evaluation's reader now does too, naming the column."""
    import anndata as ad

    from distgen.data.conditions import MissingLabelError
    from distgen.pipeline.evaluate import evaluate

    paths = _files(tmp_path, "donor")
    real = ad.read_h5ad(paths["real"])
    donor = real.obs["donor"].astype(object).to_numpy()
    donor[:5] = missing
    real.obs["donor"] = donor
    real.write_h5ad(paths["real"])
    with pytest.raises(MissingLabelError, match="'donor'"):
        evaluate(str(paths["pred"]), str(paths["real"]), batch_col="donor", metric_names=["mse"], ceiling=False, make_plots=False,
                 progress=False, baselines=["control"])


def test_batch_labels_of_a_file_are_trimmed_as_the_run_reads_them(tmp_path):
    """'d1 ' and 'd1' are one donor to the run's loader (``batch_labels`` trims); the evaluation's reader kept them apart, so
    one donor's cells were scored as two populations."""
    import anndata as ad

    from distgen.pipeline.evaluate import evaluate

    paths = _files(tmp_path, "donor")
    real = ad.read_h5ad(paths["real"])
    donor = real.obs["donor"].astype(str).to_numpy(dtype=object)
    donor[::2] = [f"{d} " for d in donor[::2]]
    real.obs["donor"] = donor
    real.write_h5ad(paths["real"])
    report = evaluate(str(paths["pred"]), str(paths["real"]), batch_col="donor", metric_names=["mse"], ceiling=False,
                      make_plots=False, progress=False, baselines=["control"])
    assert report.summary["spread"]["rows"]["stim"]["n_real"] == 3


def _typed(seed, ctx=True):
    """Two cell types x three donors; ``ctx=False``: the same cells without their cell-type labels."""
    c = Cells.concat([_cells(seed + i).relabelled(contexts=np.asarray([t] * 180, dtype=object)) for i, t in enumerate(("T", "B"))])
    return c if ctx else c.relabelled(contexts=np.asarray(["all"] * len(c.conditions), dtype=object))


def test_pooled_contexts_pool_the_spread_populations_too():
    """by_context=False (--pool-contexts) scores each condition with its contexts pooled; the spread kept one row per
    (condition, context), so a prediction without cell-type labels had no population in any row: every model spread NaN
    with the note 'got 3 and 0' generated populations, though it held three donors' cells."""
    truth = _typed(0)
    spread = score(_typed(10, ctx=False), truth, metrics=["mse"], ceiling=False, by_context=False).summary["spread"]
    assert list(spread["rows"]) == ["stim"]
    row = spread["rows"]["stim"]
    assert row["n_real"] == 3 and row["model"]["n_populations"] == 3 and math.isfinite(row["model"]["spread_ratio"])
    per_type = score(_typed(10), truth, metrics=["mse"], ceiling=False).summary["spread"]  # by context: one row a cell type
    assert sorted(per_type["rows"]) == ["stim @ B", "stim @ T"]


def test_batches_that_never_share_a_group_are_said_not_silently_skipped(tmp_path):
    """A batch column whose batches each hold other conditions (one batch per group: plate confounded with perturbation)
    gave no spread and no word: the user who named the column could not tell it from a run without one."""
    a, b = _cells(0, donors=("p1",)), _cells(1, donors=("p2",))
    truth = Cells.concat([a, b.relabelled(conditions=np.where(b.is_control, "control", "other").astype(object))])
    report = score(truth, truth, metrics=["mse"], ceiling=False)
    assert "spread" not in report.summary
    said = [n for n in report.summary["notes"] if "spread" in n]
    assert len(said) == 1 and "in 2 batches but" in said[0] and "no (condition, context) group" in said[0]
    assert not any("spread" in n for n in score(truth, truth, metrics=["mse"], ceiling=False, spread="off").summary["notes"])
    one = _cells(0, donors=("d1",))
    assert not any("spread" in n for n in score(one, one, metrics=["mse"], ceiling=False).summary["notes"])


def test_each_spread_mean_has_its_interval_over_groups(tmp_path):
    """The means over groups carry the interval of a mean over groups (the studentized bootstrap of the other metrics' means
    over perturbations, cut at each metric's range); below 2 groups it is NaN and the tables show the mean alone."""
    from distgen.evaluation.intervals import bootstrap_ci

    truth = _typed(0)
    report = score(_typed(10), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    spread = report.summary["spread"]
    values = [r["model"]["spread_ratio"] for r in spread["rows"].values()]
    lo, hi = spread["intervals"]["model"]["spread_ratio"]
    assert len(values) == 2 and lo <= spread["means"]["model"]["spread_ratio"] <= hi and lo < hi
    assert (lo, hi) == pytest.approx(bootstrap_ci(values, bounds=(0.0, math.inf)))
    assert 0.0 <= spread["intervals"]["control"]["replicate_coverage"][0] <= spread["intervals"]["control"]["replicate_coverage"][1] <= 1.0
    report.write(tmp_path, make_plots=False)
    assert "95% interval of the mean over the groups" in (tmp_path / "summary.md").read_text()
    one = score(_cells(1), _cells(0), metrics=["mse"], ceiling=False).summary["spread"]
    assert all(math.isnan(v) for v in one["intervals"]["model"]["spread_ratio"])
    from distgen.evaluation.report import spread_lines

    assert not any(" [" in line for line in spread_lines(one) if line.startswith("| model"))


@pytest.mark.parametrize("spread", ["off", "auto"])
def test_a_default_batch_column_with_unlabelled_cells_is_not_read_not_refused(tmp_path, spread):
    """A file's own 'batch' column, read as its batches only because of its name (no --batch-col), with cells that lack a
    label (here the controls', filled by another tool): the evaluation scored before, and must not now be refused (the
    refusal's fix, removing the unlabelled cells, would drop every control). The column is not read, as a file without it,
    and a note says so and how to read it (label the cells, name it with --batch-col); a named column is still refused."""
    import anndata as ad

    from distgen.data.conditions import MissingLabelError
    from distgen.pipeline.evaluate import evaluate

    paths = _files(tmp_path, "batch")
    real = ad.read_h5ad(paths["real"])
    batch = real.obs["batch"].astype(object).to_numpy()
    batch[real.obs["condition"].to_numpy() == "control"] = np.nan
    real.obs["batch"] = batch
    real.write_h5ad(paths["real"])
    base = dict(metric_names=["mse"], ceiling=False, make_plots=False, progress=False, baselines=["control"], spread=spread)
    with pytest.warns(UserWarning, match=r"'batch'.*90 of 180 cells.*--batch-col batch"):
        report = evaluate(str(paths["pred"]), str(paths["real"]), **base)
    assert "spread" not in report.summary
    assert any("--batch-col batch" in n for n in report.summary["notes"])
    with pytest.warns(UserWarning, match="--batch-col batch"):  # a file read beside cells (distgen.evaluate of Cells)
        from_cells = evaluate(_cells(1), str(paths["real"]), **base)
    assert "spread" not in from_cells.summary and any("--batch-col batch" in n for n in from_cells.summary["notes"])
    with pytest.raises(MissingLabelError, match="'batch'"):
        evaluate(str(paths["pred"]), str(paths["real"]), batch_col="batch", **base)
    (tmp_path / "p").mkdir()
    labelled = _files(tmp_path / "p", "batch")  # the prediction's column unlabelled, the truth's whole: its cells one population
    pred = ad.read_h5ad(labelled["pred"])
    pred.obs["batch"] = np.where(np.arange(pred.n_obs) < 3, None, pred.obs["batch"].astype(object).to_numpy())
    pred.write_h5ad(labelled["pred"])
    with pytest.warns(UserWarning, match=r"the pred file's obs column 'batch' has 3 of 180 cells.*one generated population per group"):
        report = evaluate(str(labelled["pred"]), str(labelled["real"]), **base)
    if spread == "auto":
        assert report.summary["spread"]["rows"]["stim"]["model"]["n_populations"] == 1


def test_a_page_written_again_from_summary_json_reads_an_undefined_spread_interval(tmp_path):
    """A spread mean over one group has no interval (NaN), which summary.json writes as null. The page written again from
    the folder (python -m distgen.report, summary.md from the summary read back) took that null for a number and failed
    with a TypeError; it shows the mean alone, as it does before the summary is written."""
    from distgen.evaluation.report import spread_lines
    from distgen.report.spread import spread_section

    truth = _cells(0)
    report = score(_cells(1), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    report.write(tmp_path, make_plots=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["spread"]["intervals"]["model"]["spread_ratio"] == [None, None]  # one group: no interval
    assert spread_section(summary) is not None
    lines = "\n".join(spread_lines(summary["spread"]))
    assert "| model | model |" in lines and "[" not in lines.split("| model | model |")[1].split("\n")[0]


def test_a_training_file_without_the_named_batch_column_is_not_read_by_its_own_batch_column(tmp_path):
    """``--batch-col donor`` with a training file that lacks 'donor': its cells were read by its own 'batch' column, one the
    user did not name (another meaning: plates, lanes), without a word. They are now read without batches, with a note."""
    import anndata as ad

    from distgen.data.layout import read_pair

    paths = _files(tmp_path, "donor")
    train = ad.read_h5ad(paths["real"])
    train.obs = train.obs.rename(columns={"donor": "batch"}).assign(batch=lambda o: "plate_" + o["batch"].astype(str))
    _, real, training, info = read_pair(str(paths["pred"]), str(paths["real"]), pert_col="condition", control="control",
                                        train=train, batch_col="donor")
    assert set(real.batches.tolist()) == {"d1", "d2", "d3"}
    assert not any(str(b).startswith("plate_") for b in training.batches.tolist())
    assert any("'donor'" in n and "training file" in n and "'batch' column is not read" in n for n in info.notes)


def test_a_prediction_whose_batch_labels_share_none_with_the_truth_says_so(tmp_path):
    """The spread scores pair no batches by label, so a prediction labelled x1..x3 against a truth of d1..d3 was scored as
    if made from those donors, without a word. Now the scores stay (defined: sets of populations are compared) and a note
    in summary.json and summary.md names the labels and the fix; none when the labels are shared."""
    truth = _cells(0)
    apart = score(_cells(1, donors=("x1", "x2", "x3")), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    same = score(_cells(1), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    assert apart.summary["spread"]["means"]["model"] == same.summary["spread"]["means"]["model"]  # unpaired: the same numbers
    notes = [n for n in apart.summary["notes"] if "share none" in n]
    assert len(notes) == 1 and "prediction x1, x2, x3; truth d1, d2, d3" in notes[0] and "--batch-col" in notes[0]
    apart.write(tmp_path, make_plots=False)
    assert (tmp_path / "summary.md").read_text().count("share none") == 1  # in the notes, once
    assert not [n for n in same.summary["notes"] if "share none" in n]
    assert "batch_labels_note" not in same.summary["spread"]
    some = score(_cells(1, donors=("d1", "x2", "x3")), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    assert not [n for n in some.summary["notes"] if "share none" in n]  # one shared: made from the truth's batches, in part



def test_a_prediction_without_batch_labels_is_not_said_to_be_made_from_other_batches():
    """A prediction read without batches (no batch column, or one with unlabelled cells: every cell's label is ``all``) has
    no batch labels to share: the note said its labels 'share none with the truth's (prediction all; truth d1, d2, d3)' and
    that its populations 'were made from other batches (other donors)'. Its one population per group is said by the row
    ('at least 2 generated populations, got 1'); no 'share none' note."""
    from distgen.types import Cells

    truth, pred = _cells(0), _cells(1)
    bare = Cells(pred.X, pred.conditions, pred.genes, pred.contexts, None, pred.control)
    out = score(bare, truth, {"control": truth}, metrics=["mse"], ceiling=False)
    assert not [n for n in out.summary["notes"] if "share none" in n], out.summary["notes"]
    assert "batch_labels_note" not in out.summary["spread"]
    assert any("got 1" in r["model"].get("note", "") for r in out.summary["spread"]["rows"].values())

def test_the_batch_permutation_test_is_summarised_in_the_report(tmp_path):
    """summary.json["spread"]["batch_test"] records the test (permutations, seed, alpha, groups, how many distinguishable);
    summary.md and the page's spread section say how many groups' real batches differ beyond noise."""
    from distgen.evaluation.spread import SPREAD_PERMUTATIONS
    from distgen.report.spread import spread_section

    truth = _cells(0)
    report = score(_cells(1), truth, {"control": truth}, metrics=["mse"], ceiling=False)
    test = report.summary["spread"]["batch_test"]
    assert test["permutations"] == SPREAD_PERMUTATIONS and test["alpha"] == 0.05 and test["groups"] == 1
    assert test["distinguishable"] == 1 and report.summary["spread"]["rows"]["stim"]["batch_test"]["p"] == 1 / 200
    report.write(tmp_path, make_plots=False)
    md = (tmp_path / "summary.md").read_text()
    assert "distinguishable from noise in 1 of 1 group" in md
    assert "distinguishable from noise in 1 of 1 group" in spread_section(report.summary).body
