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


def test_settings_that_the_rest_of_the_section_makes_inert_warn():
    import warnings

    from distgen.config import InertSettingWarning

    cases = {
        "train.min_lr_ratio=0.02 has no effect with train.schedule=constant": {"schedule": "constant", "min_lr_ratio": 0.02},
        "train.plateau_ratio=0.1 has no effect with train.schedule=constant": {"schedule": "constant", "plateau_ratio": 0.1},
        "train.ema_every=10 has no effect with train.ema_decay=null": {"ema_every": 10},
        "train.ema_epoch_end=True has no effect with train.ema_decay=null": {"ema_epoch_end": True},
        "train.decay_norm_and_bias=false has no effect with train.weight_decay=0": {"weight_decay": 0.0, "decay_norm_and_bias": False},
    }
    for text, section in cases.items():
        with pytest.warns(InertSettingWarning, match=text.replace(".", r"\.")):
            train_options(section)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_options({"schedule": "cosine", "min_lr_ratio": 0.02, "ema_decay": 0.99, "ema_every": 10, "weight_decay": 0.01,
                       "decay_norm_and_bias": False})
        train_options({"schedule": "constant"})
