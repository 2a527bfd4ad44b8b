"""``distgen sweep``'s options reach ``distgen.pipeline.sweep.sweep`` (ablation-settings round, 2026-12-07: --reference,
--jobs and --retries had no test through the CLI; the API's own tests cover what each does there)."""

import json

from distgen.cli import main


def test_sweep_hands_every_option_to_the_api(monkeypatch, tmp_path, capsys) -> None:
    """``distgen sweep``'s --reference, --jobs, --retries, --metrics, --grid and --variant reach ``distgen.pipeline.sweep``
    (the API's own tests cover what each does there)."""
    import distgen.pipeline.sweep as module

    seen: dict = {}

    class Result:
        failed: list = []
        out = tmp_path / "sw"
        comparisons: list = []

    def fake(config, grid, out, **kwargs):
        seen.update(config=config, grid=grid, out=str(out), **kwargs)
        return Result()

    monkeypatch.setattr(module, "sweep", fake)
    argv = ["sweep", "base.yaml", "--grid", "train.seed=[0,1]", "--variant", "wide", "model.hidden=64", "--out",
            str(tmp_path / "sw"), "--reference", "wide", "--jobs", "3", "--retries", "0", "--metrics", "mse,pearson_delta"]
    try:
        main(argv)
    except SystemExit as exc:  # argparse, or the command's own exit
        assert not exc.code, capsys.readouterr().err
    assert seen["config"] == "base.yaml" and seen["out"] == str(tmp_path / "sw")
    assert seen["reference"] == "wide" and seen["jobs"] == 3 and seen["retries"] == 0
    assert list(seen["metrics"]) == ["mse", "pearson_delta"]
    assert seen["grid"] == {"train.seed": [0, 1]}
    assert json.dumps(seen["variants"], default=str).count("model.hidden=64") == 1
