"""Names a user types, misspelt only in case or separator (``-``, ``_``, space): every "Did you mean" suggests the right
name (before this round difflib, which compares case-sensitively, suggested nothing for ``RANDOM`` or ``SCDFM-small``), and
the wrong spelling is still refused, never accepted as an alias."""

from __future__ import annotations

import pytest

from distgen.config import ConfigError, check_sections, load_config
from distgen.registry import UnknownComponentError, registry
from distgen.wording import near


def test_near_folds_case_and_separators_and_keeps_difflib_matches():
    assert near("RANDOM", ["nearest", "random", "same_batch"]) == ["random"]
    assert near("SCDFM_small", ["scdfm", "scdfm-small", "perturbdiff"]) == ["scdfm-small"]
    assert near("cell eval 0.7.6", ["cell-eval-0.7.6", "cell-eval-0.8.2"]) == ["cell-eval-0.7.6"]
    assert near("nearst", ["nearest", "random"]) == ["nearest"]  # an ordinary typo as before
    assert near("zzz", ["nearest", "random"]) == []
    assert near("random", ["random"]) == []  # the name itself is no suggestion


@pytest.mark.parametrize("typed", ["RANDOM", "Random", "ran-dom"])
def test_a_matcher_in_another_case_is_refused_with_its_name(typed):
    from distgen.data.section import data_section

    with pytest.raises(ConfigError, match=rf"unknown matcher '{typed}'\. Did you mean 'random'\?"):
        data_section({"matcher": typed})


@pytest.mark.parametrize("typed", ["CROSS_DIT", "Cross-DiT", "cross dit"])
def test_a_backbone_in_another_case_is_refused_with_its_name(typed):
    from distgen.pipeline.checks import check_experiment

    with pytest.raises(ConfigError, match=r"unknown backbones component .*Did you mean 'cross_dit'\?"):
        check_experiment(load_config("scdfm-small", [f"model.backbone.name={typed}"]))


def test_every_registry_suggests_the_name_in_another_case():
    from distgen.registry import KINDS

    for kind in KINDS:
        reg = registry(kind)
        name = max(reg.names(), key=len)  # the longest, so a short name never matches another one by accident
        with pytest.raises(UnknownComponentError, match=rf"Did you mean '{name}'\?"):
            reg.get(name.upper())
    with pytest.raises(UnknownComponentError, match=r"unknown component kind 'Encoders'.*Did you mean 'encoders'"):
        registry("Encoders")


@pytest.mark.parametrize("typed", ["SCDFM-small", "scdfm_small", "ScDFM Small"])
def test_a_preset_in_another_case_is_refused_with_its_name(typed):
    with pytest.raises(ConfigError, match=r"neither a config file nor a preset\. Did you mean 'scdfm-small'\?"):
        load_config(typed)


@pytest.mark.parametrize("typed", ["configs/scdfm-small.yaml", "my_scdfm_small.yaml", "scdfm_small.yml", "runs/SCDFM-small"])
def test_a_missing_config_file_is_not_offered_a_preset(typed):
    """A config file that is not there (a path, or a name with a suffix) was answered "Did you mean
    'scdfm-small'?": the preset is another config than the user's file, so taking the advice runs something else."""
    with pytest.raises(ConfigError, match="neither a config file nor a preset") as err:
        load_config(typed)
    assert "Did you mean" not in str(err.value)


def test_a_config_key_or_section_in_another_case_is_refused_with_its_name():
    from distgen.pipeline.checks import check_experiment

    for typed in ("WARMUP_STEPS", "warmup-steps", "Warmup Steps"):
        with pytest.raises(ConfigError, match=rf"unknown key '{typed}'\. Did you mean 'warmup_steps'\?"):
            check_experiment(load_config("scdfm-small", [f"train.{typed}=3"]))
    with pytest.raises(ConfigError, match=r"unknown key 'D_MODEL'\. Did you mean 'd_model'\?"):
        check_experiment(load_config("scdfm-small", ["model.backbone.D_MODEL=3"]))
    with pytest.raises(ConfigError, match=r"unknown top-level section\(s\) \['TRAIN'\]\. Did you mean 'train'\?"):
        check_sections({"TRAIN": {}})


def test_a_metric_in_another_case_is_refused_with_its_name():
    from distgen.pipeline.checks import metric_problems

    (problem,) = metric_problems(["PEARSON_DELTA"])
    assert "unknown metric 'PEARSON_DELTA'. Did you mean 'pearson_delta'?" in problem  # worded as train.val_metrics
    (problem,) = metric_problems(["Pearson-Delta"])
    assert "Did you mean 'pearson_delta'?" in problem


@pytest.mark.parametrize("typed,meant", [("CellEval2", "celleval2"), ("VCC2026", "vcc2026"), ("cell_eval_0.7.6", "cell-eval-0.7.6")])
def test_a_profile_in_another_case_is_refused_with_its_name(typed, meant):
    from distgen.evaluation.profiles import resolve_profile

    with pytest.raises(ValueError, match=rf"unknown metric profile '{typed}'\. Did you mean '{meant}'\?"):
        resolve_profile(typed)


def test_a_celleval2_preset_in_another_case_is_refused_with_its_name():
    from distgen.evaluation.metrics.celleval2_settings import settings_for

    with pytest.raises(ValueError, match=r"unknown cell-eval2 preset 'VCC2026'\. Did you mean 'vcc2026'\?"):
        settings_for("VCC2026")


def test_a_split_kind_in_another_case_is_read_as_the_kind_meant():
    from distgen.data.section import data_section

    with pytest.raises(ConfigError, match=r"no split file 'COMBO_SEEN2'; did you mean the split kind 'combo_seen2'"):
        data_section({"split": "COMBO_SEEN2"})


def test_an_evaluate_keyword_in_another_case_is_refused_with_its_name():
    from distgen.pipeline.evaluate import evaluate

    with pytest.raises(TypeError, match=r"'Metric_Names': did you mean 'metric_names'\?"):
        evaluate("p.h5ad", "r.h5ad", Metric_Names=["mse"])
    # the line above was suggested before the fix too (difflib at cutoff 0.5); this one was not
    with pytest.raises(TypeError, match=r"'METRIC_NAMES': did you mean 'metric_names'\?"):
        evaluate("p.h5ad", "r.h5ad", METRIC_NAMES=["mse"])


@pytest.mark.parametrize("override,message", [
    ("evaluate.Metrics=[mse]", r"evaluate: unknown key\(s\) \['Metrics'\]\. Did you mean 'metrics'\?"),
    ("preflight.Allow-Unembedded=true", r"preflight: unknown key\(s\) \['Allow-Unembedded'\]\. Did you mean 'allow_unembedded'\?"),
    ("train.schedule=COSINE", r"train.schedule: expected one of .*, got 'COSINE'\. Did you mean 'cosine'\?"),
    ("train.precision=BF16", r"train.precision: expected one of .*, got 'BF16'\. Did you mean 'bf16'\?"),
    ("evaluate.counts=NB", r"evaluate.counts must be one of .*, got 'NB'\. Did you mean 'nb'\?"),
])
def test_a_section_key_or_option_value_in_another_case_is_refused_with_its_name(override, message):
    from distgen.pipeline.checks import check_experiment

    with pytest.raises(ConfigError, match=message):
        check_experiment(load_config("scdfm-small", [override]))


def test_a_predict_key_in_another_case_is_refused_with_its_name():
    from distgen.pipeline.predict import predict_section

    with pytest.raises(ConfigError, match=r"predict: unknown key\(s\) \['Max-Cells-Per-Condition'\]\. Did you mean 'max_cells_per_condition'\?"):
        predict_section({"predict": {"Max-Cells-Per-Condition": 3}})


def test_a_validation_metric_or_report_section_in_another_case_is_refused_with_its_name():
    from distgen.report.page import render
    from distgen.train.validation import resolve_metrics

    with pytest.raises(ConfigError, match=r"unknown metric 'PEARSON_DELTA'\. Did you mean 'pearson_delta'\?"):
        resolve_metrics(["PEARSON_DELTA"])
    with pytest.raises(ConfigError, match=r"unknown report section\(s\) \['Headline'\]\. Did you mean 'headline'\?"):
        render(None, ("Headline",))  # type: ignore[arg-type]
