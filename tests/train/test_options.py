import pytest

from distgen.config import ConfigError
from distgen.train.options import TrainOptions, train_options


def test_defaults_and_overrides():
    opts = train_options({"steps": 5}, lr=0.1)
    assert isinstance(opts, TrainOptions) and opts.steps == 5 and opts.lr == 0.1


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"stpes": 3}, "Did you mean 'steps'"),
        ({"steps": "many"}, "train.steps"),
        ({"lr": 0.0}, "train.lr"),
        ({"optimizer": "sgd"}, "adamw"),
        ({"schedule": "linear"}, "cosine"),
        ({"precision": "fp16"}, "bf16"),
        ({"betas": [0.9]}, "betas"),
        ({"ema_decay": 1.5}, "ema_decay"),
        ({"grad_accum": 0}, "grad_accum"),
    ],
)
def test_bad_sections_name_the_key(section, needle):
    with pytest.raises(ConfigError, match=needle):
        train_options(section)


def test_fingerprint_ignores_run_control_keys():
    a = train_options({"steps": 10, "log_every": 1}).fingerprint_dict()
    b = train_options({"steps": 20, "log_every": 5}).fingerprint_dict()
    c = train_options({"lr": 0.5}).fingerprint_dict()
    assert a == b and a != c
