"""benchmarks/precision_cpu.py at tiny shapes: both precisions timed, alternating, for both presets."""

from benchmarks import precision_cpu


def test_tiny_rows_time_both_precisions(capsys):
    for name in ("tiny", "tiny-pd"):
        r = precision_cpu.time_row(name, steps=1, rounds=2)
        assert r["fp32"] > 0 and r["bf16"] > 0
        assert len(r["rounds"]["fp32"]) == len(r["rounds"]["bf16"]) == 2
    assert precision_cpu.main(["--rows", "tiny", "--steps", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "native bfloat16:" in out and "| fp32 (CPU s) |" in out and "x |" in out
