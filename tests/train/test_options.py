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
        # torch's optimizer refused these only when the trainer built it, after the run folder was written, naming no setting
        ({"betas": [1.5, 0.9]}, r"train\.betas\[0\] must be in \[0, 1\), got 1\.5"),
        ({"betas": [0.9, 1.0]}, r"train\.betas\[1\]"),
        ({"betas": [-0.1, 0.9]}, r"train\.betas\[0\]"),
        ({"eps": -1e-8}, r"train\.eps must be >= 0"),
        ({"weight_decay": -0.1}, r"train\.weight_decay must be >= 0"),
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


@pytest.mark.parametrize("schedule", ["cosine", "constant", "cosine_floor"])
def test_a_warmup_as_long_as_the_run_is_said(schedule):
    """warmup_steps >= steps: the learning rate never reaches train.lr (the warm-up is the whole run), which the schedule
    itself shows."""
    from distgen.config import InertSettingWarning
    from distgen.train.schedule import lr_factor

    with pytest.warns(InertSettingWarning, match=r"train\.warmup_steps=10 is not shorter than train\.steps=10: the learning rate never reaches"):
        train_options({"steps": 10, "warmup_steps": 10, "schedule": schedule})
    assert max(lr_factor(s, 10, 10, schedule) for s in range(10)) < 1.0  # the claim of the warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_options({"steps": 11, "warmup_steps": 10, "schedule": schedule})
    assert max(lr_factor(s, 11, 10, schedule) for s in range(11)) == 1.0
