"""``official_settings`` / ``readme_run`` of the parity harness on a made-up checkout (no official code needed: runs
in CI): the README command's overrides win over the config files, any shell layout of a command line is read, and a
setting found nowhere stops with the key and the file named."""

import textwrap

import pytest

from benchmarks.parity.perturbdiff import OfficialSettingError, official_settings, readme_run

CONFIGS = {
    "optimization/optimizer/adam.yaml": "lr: 0.0001\nbetas: [0.9,0.98]\neps: 1.0e-08\nadam_w_mode: true\nweight_decay: 0.01\n",
    "optimization/scheduler/cosine.yaml": "min_ratio: 0.1\nplateau_ratio: 0.1\nnum_warmup_steps: 200\n",
    "trainer/base.yaml": "gradient_clip_val: 1.0\nprecision: 32-true\n",
    "model/base.yaml": "p_drop_cond: 0.5\np_drop_control: 0.5\n",
    "optimization/base.yaml": "defaults:\n  - _self_\n  - optimizer: adam\n  - scheduler: cosine\nMMD_loss_factor: 1.0\n",
    "rawdata_diffusion_training.yaml": "defaults:\n  - _self_\n  - trainer: base\n  - optimization: base\n  - model: base\nrun_name: x\n",
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


def _layout(blocks: str, command: str, after: str = "") -> str:
    """A README with shared ``blocks``, then the PBMC section holding ``command`` (a code block), then ``after``."""
    return (f"# PerturbDiff\n\n```bash\n{blocks}```\n\n### 1.1) From Scratch on PBMC\n\n```bash\n{command}```\n\n"
            f"### 3) Pretraining\n\n```bash\n{after}```\n")


SCRIPT = "python ./src/apps/run/rawdata_diffusion_training.py \\\n"


def _overrides(tmp_path, readme: str) -> dict[str, str]:
    (tmp_path / "README.md").write_text(readme)
    return {k: v for k, (v, _) in readme_run(tmp_path / "README.md").items()}


def test_a_shell_comment_in_the_commands_code_block_is_not_a_heading(tmp_path):
    """A ``# ...`` shell comment in the section's code block ended the section, and the command
    after it was refused as missing ("no `python ...` command under ..."), where the earlier reader found the keys."""
    readme = _layout('A="\nlightning.ema.decay=0.99\n"\n', "# train from scratch on one node\n" + SCRIPT + "$A\n")
    assert _overrides(tmp_path, readme) == {"lightning.ema.decay": "0.99"}


def test_a_block_closed_on_its_last_line_does_not_swallow_the_next(tmp_path):
    """``A="...\\nkey=v"`` (the closing quote on the last override's line, as a shell reads it)
    left the block open, so the next block's lines were read as A's: the command expanding $A got B's EMA decay 0.5
    instead of 0.99 without a word (the earlier reader refused the two values)."""
    readme = _layout('A="\nlightning.ema.update_steps=10\nlightning.ema.decay=0.99"\nB="\nlightning.ema.decay=0.5\n"\n',
                     SCRIPT + "$A \\\ndata.normalize_counts=10\n")
    assert _overrides(tmp_path, readme) == {"lightning.ema.update_steps": "10", "lightning.ema.decay": "0.99", "data.normalize_counts": "10"}


def test_a_one_line_block_and_two_overrides_on_a_line_are_read_as_the_shell_splits_them(tmp_path):
    """``B="k=v"`` on one line was not seen as a block (the command expanding it was refused with
    "does not define"), and ``k1=v1 k2=v2`` on one block line gave k1 the value "v1 k2=v2" (k2 lost)."""
    readme = _layout('A="\ntrainer.devices=[0] lightning.ema.decay=0.99\n"\nB="data.normalize_counts=10 lightning.ema.update_steps=10"\n',
                     SCRIPT + "$A \\\n${B}\n")
    assert _overrides(tmp_path, readme) == {"trainer.devices": "[0]", "lightning.ema.decay": "0.99", "data.normalize_counts": "10",
                                            "lightning.ema.update_steps": "10"}


def test_a_block_takes_its_definition_before_the_command_and_a_comment_is_not_read(tmp_path):
    """A block defined again after the command (another section reusing the name) replaced the
    definition the command runs with, and a ``key=value`` inside the command's trailing comment was read as an override."""
    readme = _layout('A="\nlightning.ema.decay=0.99\n"\n', SCRIPT + "$A \\\nlightning.ema.update_steps=10  # was lightning.ema.decay=0.9\n",
                     after='A="\nlightning.ema.decay=0.5\n"\n' + SCRIPT + "$A\n")
    assert _overrides(tmp_path, readme) == {"lightning.ema.decay": "0.99", "lightning.ema.update_steps": "10"}


def test_the_config_files_are_the_ones_the_command_and_the_defaults_lists_select(tmp_path):
    """The settings were read from fixed files (``model/base.yaml``, ``optimizer/adam.yaml``, ...);
    a command selecting another model or optimizer config (``model=big``, ``optimization/optimizer=adamw2``) was read
    from the base files without a word. Now each group's file is the command's choice, else its defaults list's."""
    readme = README.replace("lightning.ema.update_steps=20\n", "lightning.ema.update_steps=20 \\\nmodel=big \\\noptimization/optimizer=adamw2\n")
    repo = checkout(tmp_path, readme)
    (repo / "configs/model/big.yaml").write_text("p_drop_cond: 0.3\np_drop_control: 0.25\n")
    (repo / "configs/optimization/optimizer/adamw2.yaml").write_text("betas: [0.8,0.9]\neps: 1.0e-06\nadam_w_mode: false\nweight_decay: 0.0\n")
    got = official_settings(repo)
    assert (got.p_drop_cond, got.p_drop_control) == (0.3, 0.0)  # the command's p_drop_control still wins over big.yaml
    assert (got.betas, got.eps, got.optimizer, got.lr) == ((0.8, 0.9), 1e-06, "Adam", 0.0002)


def test_a_group_without_a_choice_names_the_config_that_should_list_it(tmp_path):
    repo = checkout(tmp_path)
    (repo / "configs/rawdata_diffusion_training.yaml").write_text("defaults:\n  - _self_\n  - optimization: base\n")
    with pytest.raises(OfficialSettingError, match=r"trainer\.gradient_clip_val: not set by .*README\.md; the config group trainer: "
                                                   r"the command selects none and .*rawdata_diffusion_training\.yaml lists no default"):
        official_settings(repo)


def test_a_command_run_by_another_launcher_and_forced_overrides_are_read(tmp_path):
    """Only a ``python ...script`` line was taken for the command (``torchrun ...script`` was
    refused as missing) and a ``++key=value`` override was dropped (``+`` was outside the key pattern)."""
    readme = _layout('A="\nlightning.ema.decay=0.99\n"\n',
                     "torchrun --nproc_per_node 4 ./src/apps/run/rawdata_diffusion_training.py \\\n$A \\\n++lightning.ema.decay=0.9\n")
    assert _overrides(tmp_path, readme) == {"lightning.ema.decay": "0.9"}


def test_the_trainers_precision_is_the_commands_else_the_trainer_configs(tmp_path):
    """The precision rows compare the official ``trainer.precision`` with the preset's: from ``configs/trainer``
    where the command sets none, and the command's ``trainer.precision=...`` where it does."""
    assert official_settings(checkout(tmp_path)).precision == "32-true"
    readme = README.replace("lightning.ema.update_steps=20\n", "lightning.ema.update_steps=20 trainer.precision=bf16-mixed\n")
    assert official_settings(checkout(tmp_path / "mixed", readme)).precision == "bf16-mixed"
