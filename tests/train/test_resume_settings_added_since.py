"""A run trained before a setting was added, whose default computes what the run computed, resumes (old run folders
round, 2026-12-07).

``onehot``'s ``dose``/``dose_scale`` were added on 2026-12-06 with the default ``linear``/``1.0`` "as before: same
values". A run folder trained before (its ``state.json`` ``fingerprint_config`` has no such keys) was refused at
``distgen train ... --resume`` as "written under a different config (model.conditioner.dose: '<absent>' -> 'linear';
...). Resume with the run's own config.yaml": the run's own config.yaml resolves to the same defaults, so no config
resumed it. ``model.coupling: null`` is built as ``independent`` (the default a config without it resolves to now).
"""

from __future__ import annotations

import copy

import pytest

from distgen.train.checkpoint import CheckpointConfigError, check_state_compatible, fingerprint


def _now(**conditioner) -> dict:
    node = {"name": "onehot", "dim": 8, "pool": "sum", "use_context": True, "use_batch": False, "dose": "linear",
            "dose_scale": 1.0, **conditioner}
    model = {"name": "generator", "conditioner": node, "coupling": {"name": "independent"}, "backbone": {"name": "mlp"}}
    return {"model": model, "data": {"set_size": 8}, "train": {"steps": 6, "lr": 1e-3}}


def _earlier(config: dict) -> dict:
    """``config`` as a distgen of before 2026-12-06 recorded it: no dose keys, the coupling left null."""
    saved = copy.deepcopy(config)
    del saved["model"]["conditioner"]["dose"], saved["model"]["conditioner"]["dose_scale"]
    saved["model"]["coupling"] = None
    return {"fingerprint": fingerprint(saved), "fingerprint_config": saved}


def test_a_run_from_before_the_dose_settings_resumes_under_their_defaults(tmp_path):
    current = _now()
    stored = _earlier(current)
    assert stored["fingerprint"] != fingerprint(current)
    check_state_compatible(tmp_path, stored, current, fingerprint(current))  # raised CheckpointConfigError before


@pytest.mark.parametrize("change, named", [({"dose": "log"}, r"model\.conditioner\.dose: '<absent>' -> 'log'"),
                                           ({"dose_scale": 10.0}, r"model\.conditioner\.dose_scale: '<absent>' -> 10\.0")])
def test_an_earlier_run_resumed_with_another_dose_setting_is_refused_naming_it(tmp_path, change, named):
    stored, current = _earlier(_now()), _now(**change)
    with pytest.raises(CheckpointConfigError, match=named):
        check_state_compatible(tmp_path, stored, current, fingerprint(current))


def test_an_earlier_run_with_another_change_beside_is_still_refused_naming_that_change(tmp_path):
    stored, current = _earlier(_now()), _now()
    current["train"]["lr"] = 2e-3
    with pytest.raises(CheckpointConfigError, match=r"train\.lr: 0\.001 -> 0\.002"):
        check_state_compatible(tmp_path, stored, current, fingerprint(current))


@pytest.mark.parametrize("kind", ["added since", "same draws"])
def test_a_checkpoint_from_before_such_a_resume_still_predicts_under_the_rewritten_config_yaml(tmp_path, kind):
    """Review of the old run folders round: resuming such a run rewrites its config.yaml with the settings of now
    (``dose: linear``, ``coupling: {name: independent}``; scdfm-small's ``gene_dropout: shared``), while its checkpoints from
    before the resume keep the config they were trained with. Predicting from one of them (``--checkpoint best`` where
    the best step came before the resume, or ``--checkpoint step_...``) was refused as "config.yaml differs from the
    config checkpoint ... was trained with (model.conditioner.dose: '<absent>' -> 'linear'; ...)": the same model. The
    comparison reads the checkpoint's config as a resume does; any other change is still refused."""
    from distgen.train.checkpoint import Checkpoint, check_config_matches

    if kind == "added since":
        now = _now()
        trained = _earlier(now)["fingerprint_config"]
    else:
        backbone = {"name": "pad_transformer", "d_model": 64, "dropout": 0.0, "graph": True, "gene_dropout": "shared"}
        now = {"model": {"name": "generator", "backbone": backbone, "coupling": {"name": "independent"}}, "data": {"set_size": 8}}
        trained = copy.deepcopy(now)
        trained["model"]["backbone"]["gene_dropout"] = "per_cell"
    ckpt = Checkpoint(tmp_path, {"config": trained}, {}, None, None, None)
    check_config_matches(ckpt, now, "run/config.yaml")  # raised CheckpointConfigError before
    edited = copy.deepcopy(now)
    edited["data"]["set_size"] = 4
    with pytest.raises(CheckpointConfigError, match=r"data\.set_size: 8 -> 4"):
        check_config_matches(ckpt, edited, "run/config.yaml")


def test_an_earlier_run_resumes_with_its_own_config_yaml_which_writes_coupling_null(tmp_path):
    """The run's own config.yaml (an earlier distgen wrote ``coupling: null``) resolves today with the dose defaults added
    and the null kept: the same model as the checkpoint's, read either way."""
    current = _now()
    current["model"]["coupling"] = None
    stored = _earlier(_now())
    check_state_compatible(tmp_path, stored, current, fingerprint(current))
