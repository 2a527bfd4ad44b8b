"""``official_settings`` / ``readme_run`` of the parity harness on a made-up checkout (no official code needed: runs
in CI): the README command's overrides win over the config files, any shell layout of a command line is read, and a
setting found nowhere stops with the key and the file named."""

import textwrap

import pytest

from benchmarks.parity.perturbdiff import OfficialSettingError, official_settings, readme_run

CONFIGS = {
    "optimization/optimizer/adam.yaml": "lr: 0.0001\nbetas: [0.9,0.98]\neps: 1.0e-08\nadam_w_mode: true\nweight_decay: 0.01\n",
    "optimization/scheduler/cosine.yaml": "min_ratio: 0.1\nplateau_ratio: 0.1\nnum_warmup_steps: 200\n",
    "trainer/base.yaml": "gradient_clip_val: 1.0\n",
    "model/base.yaml": "p_drop_cond: 0.5\np_drop_control: 0.5\n",
    "optimization/base.yaml": "MMD_loss_factor: 1.0\n",
}

README = textwrap.dedent('''\
    # PerturbDiff

    ```bash
    COMMON_TRAIN_RUNTIME="
      data.normalize_counts="10"   # counts / 10
    lightning.ema.decay=0.99
    lightning.ema.update_steps=10 \\
    "
    COMMON_SCRATCH_DATA="
    model.p_drop_control=0
    "
    COMMON_PBMC_TRAIN="
    optimization.optimizer.lr=0.0002
    "
    PRETRAIN_EXTRA="
    model.p_drop_control=1
    lightning.ema.decay=0.5
    "
    ```

    ### 1.1) From Scratch on PBMC

    ```bash
    python ./src/apps/run/rawdata_diffusion_training.py \\
    $COMMON_TRAIN_RUNTIME \\
    $COMMON_SCRATCH_DATA \\
    ${COMMON_PBMC_TRAIN} \\
    lightning.ema.update_steps=20
    ```

    ### 3) Pretraining

    ```bash
    python ./src/apps/run/rawdata_diffusion_training.py $COMMON_TRAIN_RUNTIME $PRETRAIN_EXTRA
    ```
    ''')


def checkout(tmp_path, readme=README, drop=None):
    for name, text in CONFIGS.items():
        path = tmp_path / "configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in text.splitlines() if drop is None or not line.startswith(drop + ":")))
    (tmp_path / "README.md").write_text(readme)
    return tmp_path


def test_the_pbmc_commands_overrides_win_and_any_layout_is_read(tmp_path):
    """Indented, quoted, commented and continued lines are read; the command's own override beats its block's; the
    pretraining block's values (another command) and the config files' defaults under an override are not used
    (the earlier regex wanted exactly one ``key=value`` line in the whole README, unindented and uncommented)."""
    got = official_settings(checkout(tmp_path))
    assert (got.input_scale, got.ema_decay, got.ema_every) == (0.1, 0.99, 20)
    assert (got.lr, got.p_drop_control, got.p_drop_cond) == (0.0002, 0.0, 0.5)  # README over yaml; yaml where unset
    assert got.betas == (0.9, 0.98) and got.optimizer == "AdamW"
    assert readme_run(tmp_path / "README.md")["lightning.ema.update_steps"][1] == 28  # the line of the winning override


def test_a_setting_absent_from_the_command_names_the_key_and_the_file(tmp_path):
    readme = README.replace("lightning.ema.decay=0.99\n", "")
    with pytest.raises(OfficialSettingError, match=r"lightning\.ema\.decay: not set by the command under 'From Scratch on PBMC' in .*README\.md"):
        official_settings(checkout(tmp_path, readme))


def test_a_setting_absent_from_the_command_and_its_config_names_both(tmp_path):
    with pytest.raises(OfficialSettingError, match=r"model\.p_drop_cond: not set by .*README\.md, and .*configs/model/base\.yaml has no key 'p_drop_cond'"):
        official_settings(checkout(tmp_path, drop="p_drop_cond"))


@pytest.mark.parametrize(("edit", "message"), [
    (("From Scratch on PBMC", "From scratch, PBMC"), r"README\.md: no heading holding 'From Scratch on PBMC'"),
    (("${COMMON_PBMC_TRAIN}", "$COMMON_PBMC_TRAINING"), r"README\.md: the command under .* expands \$COMMON_PBMC_TRAINING, which the README does not define"),
    (("python ./src/apps/run/rawdata_diffusion_training.py \\\n$COMMON_TRAIN_RUNTIME", "python train.py \\\n$COMMON_TRAIN_RUNTIME"),
     r"README\.md: no `python \.\.\.rawdata_diffusion_training\.py` command under '### 1\.1\) From Scratch on PBMC'"),
])
def test_a_readme_without_the_command_says_what_is_missing(tmp_path, edit, message):
    readme = README.replace(*edit)
    assert readme != README
    with pytest.raises(OfficialSettingError, match=message):
        official_settings(checkout(tmp_path, readme))


def test_a_checkout_without_a_readme_names_it(tmp_path):
    (checkout(tmp_path) / "README.md").unlink()
    with pytest.raises(OfficialSettingError, match=r"README\.md: no such file"):
        official_settings(tmp_path)
