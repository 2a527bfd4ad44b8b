"""The sweep page: variants with seeds as points, paired differences as intervals, from memory or a sweep folder."""

import csv
import json
import math

import numpy as np

from distgen.report.sweep import SweepInputs, load_sweep_dir, paired_differences, render_sweep, seed_means

from .tiny import check_page

VARIANTS = ["enc=kme", "enc=set", "weight=0"]


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for vi, v in enumerate(VARIANTS):
        for s in range(3):
            for p in range(8):
                rows.append({"variant": v, "seed": s, "perturbation": f"P{p}", "mse": 0.01 + 0.003 * vi + rng.normal(0, 5e-4),
                             "pearson_delta": 0.6 - 0.05 * vi + rng.normal(0, 0.02)})
    rows[0]["mse"] = math.nan  # a NaN is skipped, not averaged
    return rows


def test_seed_means_and_paired_differences():
    rows = _rows()
    sm = seed_means(rows, "mse")
    assert set(sm) == set(VARIANTS) and set(sm["enc=kme"]) == {0, 1, 2}
    d = paired_differences(rows, "weight=0", "enc=kme", "mse")
    assert len(d) == 3 * 8 - 1 and np.mean(d) > 0.005


def test_sweep_page_is_self_contained(tmp_path):
    rows = _rows()
    comps = [{"variant": v, "metric": m, "n_pairs": 24, "mean_diff": 0.0, "p_value": 1e-4, "better": "reference"}
             for v in VARIANTS[1:] for m in ("mse", "pearson_delta")]
    inp = SweepInputs(rows, VARIANTS, VARIANTS[0], ["mse", "pearson_delta"], comps,
                      references={"control": {"mse": (0.02, 0.02, 0.02)}, "ceiling": {"mse": (0.004, 0.003, 0.005)}}, failed=["x__seed1"])
    html = render_sweep(inp)
    images = check_page(html, ["variants", "paired", "failed"])
    assert len(images) == 2
    assert "enc=kme (reference)" in html and "x__seed1" in html


def test_sweep_folder_is_read_back(tmp_path):
    rows = _rows()
    with (tmp_path / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "summary.json").write_text(json.dumps({
        "reference": VARIANTS[0], "variants": VARIANTS, "failed": [],
        "comparisons": [{"variant": "enc=set", "metric": "mse", "n_pairs": 24, "mean_diff": 0.003, "p_value": 0.01, "better": "reference"}]}))
    for i, (ctrl, ceil) in enumerate(((0.02, 0.004), (0.03, 0.006))):
        run = tmp_path / "runs" / f"r{i}" / "eval"
        run.mkdir(parents=True)
        run.joinpath("summary.json").write_text(json.dumps({"metrics": {"mse": {"baselines": {"control": ctrl, "linear": ctrl}, "ceiling": ceil}}}))
    inp = load_sweep_dir(tmp_path)
    assert inp.metrics == ["mse"] and inp.reference == VARIANTS[0] and len(inp.rows) == len(rows)
    assert inp.references["ceiling"]["mse"] == (0.005, 0.004, 0.006)
    assert list(inp.references) == ["control (= linear)", "ceiling"]  # identical baselines drawn once
    check_page(render_sweep(inp), ["variants", "paired"])


def test_variants_without_effect_are_shown_on_the_page(tmp_path):
    """summary.json["identical"] (also in summary.md and on stderr) reaches report.html: a section, the row and the header."""
    rows = [r for r in _rows() if r["variant"] != "weight=0"]
    rows += [{**r, "variant": "weight=0"} for r in rows if r["variant"] == "enc=kme"]  # the same results as enc=kme
    same = {"weight=0": "enc=kme"}
    with (tmp_path / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "summary.json").write_text(json.dumps({"reference": VARIANTS[0], "variants": VARIANTS, "failed": [],
                                                       "comparisons": [], "identical": same}))
    inp = load_sweep_dir(tmp_path)
    assert inp.identical == same
    html = render_sweep(inp)
    check_page(html, ["variants", "identical"])
    assert "<code>weight=0</code> = <code>enc=kme</code>" in html
    assert "weight=0 (= enc=kme: no effect)" in html
    assert "1 variant gave another's results" in html
    plain = render_sweep(SweepInputs(_rows(), VARIANTS, VARIANTS[0], ["mse"]))
    assert 'id="identical"' not in plain and "no effect" not in plain


def test_one_seed_no_sd_nonsignificant_sides_and_variants_without_effect():
    """One seed: no 'nan' sd; a non-significant mean difference is not a 'better' side; identical variants are named."""
    from html import unescape

    from distgen.pipeline.aggregate import summary_markdown

    rows = [r for r in _rows() if r["seed"] == 0]
    comps = [{"variant": "enc=set", "metric": "mse", "n_pairs": 8, "mean_diff": 0.003, "p_value": 0.4, "better": "reference"},
             {"variant": "weight=0", "metric": "mse", "n_pairs": 8, "mean_diff": 0.006, "p_value": 0.01, "better": "reference"}]
    html = unescape(render_sweep(SweepInputs(rows, VARIANTS, VARIANTS[0], ["mse"], comps, identical={"weight=0": "enc=set"})))
    assert "nan" not in html.split("Mean ± sd over seeds")[1].split("</table>")[0]
    assert "(1 seed: no sd)" in html
    assert "<td>reference (not significant)</td>" in html and "<td>reference</td>" in html
    assert "Variants without effect" in html and "weight=0</code> = <code>enc=set" in html
    md, _ = summary_markdown(rows, VARIANTS, VARIANTS[0], ["mse"])
    assert "+/- nan" not in md and "(1 seed: no sd)" in md


def test_variants_equal_within_the_tolerance_are_not_said_to_have_generated_the_same_cells():
    """Variants whose results differ by 1e-7 of each value (inside SAME_RESULTS_RTOL) are listed as without effect, but
    summary.md and the page said "the runs generated the same cells", which nobody checked: they now say the results
    were equal within the tolerance (docs/reliability.md, "Wording round")."""
    from html import unescape

    from distgen.evaluation.uncertainty import SAME_RESULTS_RTOL
    from distgen.pipeline.aggregate import summary_markdown

    rows = [r for r in _rows() if r["variant"] != "weight=0"]
    rows += [{**r, "variant": "weight=0", "mse": r["mse"] * (1 + 1e-7), "pearson_delta": r["pearson_delta"] * (1 - 1e-7)}
             for r in rows if r["variant"] == "enc=set"]
    assert SAME_RESULTS_RTOL > 1e-7
    md, _ = summary_markdown(rows, VARIANTS, VARIANTS[0], ["mse", "pearson_delta"])
    html = unescape(render_sweep(SweepInputs(rows, VARIANTS, VARIANTS[0], ["mse"], identical={"weight=0": "enc=set"})))
    for text in (md, html):
        assert "`weight=0` = `enc=set`" in text or "weight=0</code> = <code>enc=set" in text
        assert "same cells" not in text
        assert f"results equal within {SAME_RESULTS_RTOL:g}" in text
