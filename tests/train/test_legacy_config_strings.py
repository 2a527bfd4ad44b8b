"""A config saved by a distgen that read a plain ``1e3`` as text (before 2026-12-05) holds that string unquoted
(``x: 1e3``), and the run's checkpoint records the string. Read today the plain ``1e3`` is the number 1000.0: a resume
(or a prediction) of such a run is refused as another config, and the refusal names the key, says why and how to
continue (quote the value), rather than only ``x: '1e3' -> 1000.0``. The values it was trained with are kept: a
string field given 1000.0 would not be the string '1e3'."""

import pytest

from distgen.config import load_yaml, sci_number
from distgen.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_config_matches,
    check_state_compatible,
    fingerprint,
    legacy_strings,
)

SAVED = {"model": {"name": "m", "label": "1e3", "tags": ["a", "2E4"]}, "train": {"steps": 10}}  # what the old run recorded


def _state(config):
    return {"fingerprint": fingerprint(config), "fingerprint_config": config, "config": config}


def test_sci_number_is_the_number_a_plain_scalar_reads_as_now():
    assert sci_number("1e3") == 1000.0 and sci_number("-2.5E-4") == -2.5e-4
    assert sci_number("1.0") is None and sci_number("abc") is None and sci_number(1000.0) is None and sci_number("e3") is None


def test_legacy_strings_finds_only_strings_now_read_as_their_number():
    now = {"model": {"name": "m", "label": 1000.0, "tags": ["a", "20000.0"]}, "train": {"steps": 10}}
    assert legacy_strings(SAVED, now) == [("model.label", "1e3"), ("model.tags[1]", "2E4")]
    assert legacy_strings(SAVED, {**now, "model": {**now["model"], "label": 999.0, "tags": ["a", "2E4"]}}) == []
    assert legacy_strings({"x": "1e3"}, {"x": True}) == []


def test_resuming_with_the_file_read_today_names_the_key_and_the_fix(tmp_path):
    (tmp_path / "config.yaml").write_text("model:\n  name: m\n  label: 1e3\n  tags: [a, 2E4]\ntrain:\n  steps: 10\n")
    now = load_yaml(tmp_path / "config.yaml")  # how the old run's own config.yaml reads today
    assert now["model"]["label"] == 1000.0
    with pytest.raises(CheckpointError) as err:
        check_state_compatible(tmp_path / "ckpt", _state(SAVED), now, fingerprint(now))
    msg = str(err.value)
    assert "model.label: '1e3' -> 1000.0" in msg  # the difference, as before
    assert "read a plain 1e3 as text" in msg and "label: '1e3'" in msg and "tags[1]: '2E4'" in msg  # why, and the fix
    (tmp_path / "config.yaml").write_text("model:\n  name: m\n  label: '1e3'\n  tags: [a, '2E4']\ntrain:\n  steps: 10\n")
    quoted = load_yaml(tmp_path / "config.yaml")
    check_state_compatible(tmp_path / "ckpt", _state(SAVED), quoted, fingerprint(quoted))  # the fix works: same config


def test_another_change_is_refused_without_the_hint(tmp_path):
    now = {**SAVED, "train": {"steps": 20}}
    with pytest.raises(CheckpointError) as err:
        check_state_compatible(tmp_path, _state(SAVED), now, fingerprint(now))
    assert "train.steps: 10 -> 20" in str(err.value) and "as text" not in str(err.value)


def test_predicting_with_such_a_config_yaml_names_the_key_and_the_fix(tmp_path):
    ckpt = Checkpoint(tmp_path, _state({"model": SAVED["model"], "data": {"dataset": "x"}}), {}, None, None, None)
    now = {"model": {**SAVED["model"], "label": 1000.0}, "data": {"dataset": "x"}}
    with pytest.raises(CheckpointError, match=r"model\.label.*runs/a/config\.yaml \(label: '1e3'"):
        check_config_matches(ckpt, now, "runs/a/config.yaml")
