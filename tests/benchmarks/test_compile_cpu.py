"""benchmarks/compile_cpu.py at tiny shapes (eager only: compiling takes minutes on a busy CPU)."""

from benchmarks import compile_cpu


def test_a_tiny_eager_measurement_and_the_alternating_table(capsys):
    r = compile_cpu.measure("tiny", "eager", steps=2, warmup=1)
    assert r["variant"] == "eager" and len(r["cpu"]) == 2 and r["cpu_median"] > 0
    assert compile_cpu.main(["--row", "tiny", "--variants", "eager", "--rounds", "1", "--steps", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "round 1 eager:" in out and "| eager |" in out
